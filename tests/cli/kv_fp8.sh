#!/usr/bin/env bash
# The FP8 KV cache on the CPU backend (--kv-cache-dtype fp8):
#   - in the same --kv-cache-memory the pool holds 4x the blocks of the float32 cache (one
#     byte an element instead of four), as the start-up line says;
#   - stories260K's perplexity over the calibration text changes, and by less than 15%
#     (docs/quantization.md has the table);
#   - greedy generation runs, and under mpirun at TP 2 prints exactly what one rank prints
#     with the FP8 cache too;
#   - a missing K/V scale is warned about; a bad value and --device cuda are clear errors.
set -uo pipefail
. "$(dirname "$0")/common.inc"
export OMP_NUM_THREADS=1
TEXT=$SRC/configs/calibration/stories.txt

blocks() { sed -n 's/.*KV cache: \([0-9]*\) blocks.*/\1/p' "$1" | head -1; }
for kv in auto fp8; do
  timeout 60 "$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 40 --ignore-eos \
    --print-ids --kv-cache-memory 700000 --max-num-seqs 8 --max-model-len 512 --kv-cache-dtype $kv >"$TMP/ids.$kv" 2>"$TMP/err.$kv" ||
    fail "generate --kv-cache-dtype $kv: $(tail -2 "$TMP/err.$kv")"
done
b32=$(blocks "$TMP/err.auto") b8=$(blocks "$TMP/err.fp8")
if [ -n "$b32" ] && [ -n "$b8" ] && [ "$b8" = $((4 * b32)) ]; then
  echo "ok: 700,000 bytes hold $b32 float32 blocks, $b8 FP8 blocks"
else
  fail "KV blocks float32 '$b32', fp8 '$b8': expected 4x ($(grep 'KV cache' "$TMP/err.fp8"))"
fi
# a pool capped by --max-num-seqs says so, with what the memory would hold (4x float32's)
timeout 60 "$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 4 --prompt-ids 1 \
  --kv-cache-memory 700000 --max-num-seqs 2 --max-model-len 512 --kv-cache-dtype fp8 \
  >/dev/null 2>"$TMP/err.cap" || fail "generate --max-num-seqs 2: $(tail -2 "$TMP/err.cap")"
cap=$(sed -n 's/.*stops at --max-num-seqs 2 full contexts; the memory would hold \([0-9]*\) blocks.*/\1/p' "$TMP/err.cap")
pool=$(blocks "$TMP/err.cap")
if [ -n "$cap" ] && [ "$cap" = $((4 * b32)) ] && [ "$pool" = 64 ]; then
  echo "ok: capped pool of $pool blocks (2 x 512 tokens), the memory would hold $cap"
else
  fail "capped pool: pool '$pool' (want 64), memory '$cap' (want $((4 * b32))): $(grep 'KV cache' "$TMP/err.cap")"
fi
grep -q 'K/V scales for 0 of 5 layers' "$TMP/err.fp8" && echo "ok: missing scales warned" ||
  fail "no warning about missing K/V scales: $(cat "$TMP/err.fp8")"
[ "$(wc -w <"$TMP/ids.fp8")" -ge 40 ] || fail "fp8 generation printed too few ids"

ppl() { timeout 120 "$FOLIO" score --model "$STORIES" --text "$TEXT" --window 256 "$@" 2>/dev/null |
          sed -n 's/^perplexity \([0-9.]*\) .*/\1/p'; }
p32=$(ppl) p8=$(ppl --kv-cache-dtype fp8)
if awk -v a="$p32" -v b="$p8" 'BEGIN { exit !(a > 0 && b != a && b < 1.15 * a && b > 0.85 * a) }'; then
  echo "ok: perplexity float32 KV $p32, FP8 KV $p8"
else
  fail "perplexity float32 KV '$p32', FP8 KV '$p8': expected a change of less than 15%"
fi

if command -v mpirun >/dev/null; then
  timeout 120 mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS -x ASAN_OPTIONS \
    -x LSAN_OPTIONS -x UBSAN_OPTIONS -np 2 "$FOLIO" generate --model "$STORIES" \
    --temperature 0 --max-tokens 40 --ignore-eos --print-ids --kv-cache-memory 4000000 \
    --kv-cache-dtype fp8 >"$TMP/ids.tp2" 2>"$TMP/err.tp2" || fail "TP 2: $(tail -2 "$TMP/err.tp2")"
  cmp -s "$TMP/ids.fp8" "$TMP/ids.tp2" && echo "ok: TP 2 with the FP8 cache = one rank" ||
    fail "TP 2 with the FP8 cache differs from one rank"
fi

expect_error "bad --kv-cache-dtype" "--kv-cache-dtype: 'fp16' is not supported" -- \
  generate --model "$STORIES" --prompt hi --kv-cache-dtype fp16
expect_error "fp8 KV on cuda in float32" "reads an FP8 cache for bfloat16 and float16 models, not --dtype float32" -- \
  generate --model "$STORIES" --prompt hi --device cuda --dtype float32 --kv-cache-dtype fp8
finish
