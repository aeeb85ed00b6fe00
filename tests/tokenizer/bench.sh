#!/usr/bin/env bash
# Tokenizer speed, folio vs the oracle (Hugging Face tokenizers via npm), on the same ~4 MB
# English text in one run: load time, encode MB/s (line by line, and the whole file as one
# text; specials off), decode MB/s.
#   bash tests/tokenizer/bench.sh path/to/folio [TEXT_FILE]
# Without TEXT_FILE the text is built by make_bench_text.sh from English prose shipped with
# the system. Targets: encode >= 3x the oracle, decode >= 100 MB/s, Llama 3 load <= oracle.
set -uo pipefail
FOLIO=$1
T=$(cd "$(dirname "$0")" && pwd)
CACHE=$(bash "$T/fetch_tokenizers.sh") || exit $?
ORACLE=$CACHE/oracle/node_modules/@anush008/tokenizers
TEXT=${2:-}
if [ -z "$TEXT" ]; then
    TEXT=$CACHE/bench-english.txt
    [ -f "$TEXT" ] || bash "$T/make_bench_text.sh" "$TEXT" >/dev/null
fi
field() { awk -v k="$1" '$1 == k { print $2 }'; }
printf '%-8s %-6s %9s %12s %18s %12s\n' model who load_s encode_MBps encode_whole_MBps decode_MBps
for m in llama3 llama2 qwen3; do
    ours=$("$FOLIO" tokenize --model "$CACHE/models/$m" --bench "$TEXT") || exit 1
    theirs=$(node "$T/oracle.js" "$ORACLE" bench "$CACHE/models/$m/tokenizer.json" "$TEXT") || exit 1
    for who in folio oracle; do
        out=$ours; [ $who = oracle ] && out=$theirs
        printf '%-8s %-6s %9s %12s %18s %12s\n' $m $who "$(field load_s <<<"$out")" \
            "$(field encode_MBps <<<"$out")" "$(field encode_whole_MBps <<<"$out")" \
            "$(field decode_MBps <<<"$out")"
    done
    awk -v a="$(field encode_MBps <<<"$ours")" -v b="$(field encode_MBps <<<"$theirs")" \
        -v c="$(field encode_whole_MBps <<<"$ours")" -v d="$(field encode_whole_MBps <<<"$theirs")" \
        -v la="$(field load_s <<<"$ours")" -v lb="$(field load_s <<<"$theirs")" -v m=$m \
        'BEGIN { printf "%-8s encode folio/oracle %.1fx (line by line), %.1fx (whole file); load %.2fx\n", m, a / b, c / d, la / lb }'
done
echo "text: $TEXT ($(stat -c %s "$TEXT") bytes)"
