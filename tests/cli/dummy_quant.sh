#!/usr/bin/env bash
# --load-format dummy --quantization w4a16: a dummy 4-bit model (engine/base/quant_dummy.h),
# on the CPU backend its dequantized weights. Same ids twice; other group sizes, symmetric and
# per channel run too; score takes the flags; TP 2 gives one rank's ids; group sizes that do not
# fit a layer (or a rank's slice of it) and misused flags fail with one line naming why.
set -uo pipefail
. "$(dirname "$0")/common.inc"
mkdir -p "$TMP/shape-only"
# qwen3_qknorm's shapes: hidden 64, q_proj out 128 (o_proj in 128), FFN 96 (down_proj in 96)
cp "$FIXTURES/qwen3_qknorm/config.json" "$TMP/shape-only/"
M=$TMP/shape-only
Q=(--load-format dummy --quantization w4a16)
G=(--prompt-ids 1,2,3 --max-tokens 8 --temperature 0 --ignore-eos --print-ids)

a=$("$FOLIO" generate --model "$M" "${Q[@]}" --group-size 32 "${G[@]}" 2>"$TMP/err") || fail "w4a16 run failed: $(cat "$TMP/err")"
b=$("$FOLIO" generate --model "$M" "${Q[@]}" --group-size 32 "${G[@]}" 2>/dev/null)
[ "$(echo "$a" | wc -w)" = 8 ] && echo "ok: 8 ids from a dummy 4-bit model" || fail "expected 8 ids, got '$a'"
[ "$a" = "$b" ] && echo "ok: the dummy 4-bit model is deterministic" || fail "two runs differ: '$a' vs '$b'"
grep -q "dummy 4-bit Linear weights (--quantization w4a16, group size 32, asymmetric)" "$TMP/err" \
  && echo "ok: summary says dummy 4-bit" || fail "summary: $(cat "$TMP/err")"
# the default group (128) on quant_awq_g64_tp's shapes (hidden 128, FFN 256; its own AWQ
# quantization_config is replaced by the dummy one)
mkdir -p "$TMP/g128"
cp "$FIXTURES/quant_awq_g64_tp/config.json" "$TMP/g128/"
for run in "$M --group-size -1" "$M --group-size 32 --sym" "$M --group-size 16" "$TMP/g128" \
           "$TMP/g128 --sym"; do
  # shellcheck disable=SC2086
  "$FOLIO" generate --model $run "${Q[@]}" "${G[@]}" >"$TMP/out" 2>"$TMP/err" \
    && [ "$(wc -w <"$TMP/out")" = 8 ] && echo "ok: runs with --model $run" || fail "--model $run: $(cat "$TMP/err")"
done
grep -q "group size 128, symmetric" "$TMP/err" && echo "ok: default group size 128" || fail "default group: $(cat "$TMP/err")"
"$FOLIO" score --model "$M" "${Q[@]}" --group-size 32 --prompt-ids 1,2,3,4,5 >"$TMP/out" 2>"$TMP/err" \
  && grep -q "^perplexity" "$TMP/out" && echo "ok: score takes --quantization" || fail "score: $(cat "$TMP/err")"

if command -v mpirun >/dev/null; then
  MPI=(timeout 120 mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS -x ASAN_OPTIONS
       -x LSAN_OPTIONS -x UBSAN_OPTIONS -np 2)
  one=$(OMP_NUM_THREADS=1 "$FOLIO" generate --model "$M" "${Q[@]}" --group-size 16 "${G[@]}" 2>"$TMP/err") || fail "TP 1: $(cat "$TMP/err")"
  two=$(OMP_NUM_THREADS=1 "${MPI[@]}" "$FOLIO" generate --model "$M" "${Q[@]}" --group-size 16 "${G[@]}" 2>"$TMP/err") || fail "TP 2: $(cat "$TMP/err")"
  [ -n "$one" ] && [ "$one" = "$two" ] && echo "ok: TP 2 gives one rank's ids ($two)" || fail "TP 2 '$two' vs TP 1 '$one'"
  # down_proj's 96 inputs over 2 ranks: 48 each, which group 32 cuts
  OMP_NUM_THREADS=1 "${MPI[@]}" "$FOLIO" generate --model "$M" "${Q[@]}" --group-size 32 "${G[@]}" >/dev/null 2>"$TMP/err"
  grep -q "layer 'model.layers.0.mlp.down_proj': --group-size 32 does not divide this rank's 48 input columns" "$TMP/err" \
    && echo "ok: TP 2 names the cut group" || fail "TP 2 cut: $(cat "$TMP/err")"
else
  echo "skipped: TP 2 (no mpirun)"
fi

expect_error "group size that does not divide" \
  "layer 'model.layers.0.mlp.down_proj': --group-size 32 does not divide its input size 172" -- \
  generate --model "$STORIES" "${Q[@]}" --group-size 32 --max-tokens 8
expect_error "no --load-format dummy" "--quantization w4a16 needs --load-format dummy" -- \
  generate --model "$STORIES" --quantization w4a16 --max-tokens 8
expect_error "unknown quantization" "--quantization: 'int8' is not supported (accepted: w4a16" -- \
  generate --model "$M" --load-format dummy --quantization int8 --max-tokens 8
expect_error "--group-size alone" "--group-size and --sym go with --quantization w4a16" -- \
  generate --model "$M" --load-format dummy --group-size 32 --max-tokens 8
expect_error "bad --group-size" "--group-size: 'x' is not an integer" -- \
  generate --model "$M" "${Q[@]}" --group-size x --max-tokens 8
expect_error "serve without dummy" "--quantization w4a16 needs --load-format dummy" -- \
  serve --model "$M" --quantization w4a16
expect_error "score without dummy" "--quantization w4a16 needs --load-format dummy" -- \
  score --model "$M" --quantization w4a16 --prompt-ids 1,2

# bench (the CUDA backend): the flags parse and a real config's layers are checked before any
# GPU is needed (llama-3-8b: 4096 inputs, which 100 does not divide)
"$FOLIO" bench latency --model "$SRC/configs/llama-3-8b" "${Q[@]}" --group-size 100 >/dev/null 2>"$TMP/err"
if grep -q "built without CUDA" "$TMP/err"; then
  echo "skipped: bench (built without CUDA)"
else
  grep -q "layer 'model.layers.0.self_attn.q_proj': --group-size 100 does not divide its input size 4096" "$TMP/err" \
    && echo "ok: bench checks the group size of llama-3-8b" || fail "bench: $(cat "$TMP/err")"
  expect_error "bench without dummy" "--quantization w4a16 needs --load-format dummy" -- \
    bench latency --model "$SRC/configs/llama-3-8b" --quantization w4a16
fi
finish
