#!/usr/bin/env bash
# Builds the ~4 MB English benchmark text from English prose shipped on this machine (Debian
# license texts, package READMEs, copyright files and changelogs, in sorted order), keeping
# only valid UTF-8 files. Usage: make_bench_text.sh OUT [BYTES=4000000]
set -euo pipefail
out=$1
limit=${2:-4000000}
: >"$out"
mapfile -t files < <(
    find /usr/share/common-licenses -type f | sort
    find /usr/share/doc -type f \( -name 'README*' -o -name 'copyright' -o -name 'changelog*' \
        -o -name 'NEWS*' -o -name '*.txt' \) | sort)
for f in "${files[@]}"; do
    [ "$(stat -c %s "$out")" -ge "$limit" ] && break
    case $f in
        *.gz) zcat -f "$f" 2>/dev/null >"$out.part" || continue ;;
        *) cat "$f" >"$out.part" ;;
    esac
    iconv -f UTF-8 -t UTF-8 "$out.part" >/dev/null 2>&1 || continue
    cat "$out.part" >>"$out"
done
rm -f "$out.part"
head -c "$limit" "$out" >"$out.cut" && mv "$out.cut" "$out"
# a cut in the middle of a character would make the text invalid: drop the partial tail
iconv -c -f UTF-8 -t UTF-8 "$out" >"$out.cut" && mv "$out.cut" "$out"
echo "$out: $(stat -c %s "$out") bytes"
