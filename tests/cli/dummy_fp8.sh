#!/usr/bin/env bash
# --load-format dummy --quantization fp8 [--fp8-scheme channel|block]: a dummy FP8 model
# (engine/base/fp8_dummy.h), on the CPU backend its dequantized weights with the activations
# quantized as the scheme says. Both schemes run and are deterministic; TP 2 of a block model
# whose shards hold whole 128-blocks gives one rank's ids; TP 4 cuts a block and fails naming
# the layer, the block and the world size; misused flags fail with one line.
set -uo pipefail
. "$(dirname "$0")/common.inc"
# hidden 256, 4 heads of 64 (4 KV heads), FFN 512: every column- and row-parallel shard at
# TP 2 is whole 128-blocks; at TP 4 q_proj's 64 rows a rank cut one
M=$TMP/shape
mkdir -p "$M"
python3 - "$FIXTURES/llama_mha_f32/config.json" "$M/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=4,
         head_dim=64, num_hidden_layers=1, vocab_size=256)
json.dump(c, open(sys.argv[2], "w"))
PY
G=(--prompt-ids 1,2,3 --max-tokens 8 --temperature 0 --ignore-eos --print-ids)
for scheme in channel block; do
  Q=(--load-format dummy --quantization fp8 --fp8-scheme "$scheme")
  a=$("$FOLIO" generate --model "$M" "${Q[@]}" "${G[@]}" 2>"$TMP/err") || fail "$scheme run failed: $(cat "$TMP/err")"
  b=$("$FOLIO" generate --model "$M" "${Q[@]}" "${G[@]}" 2>/dev/null)
  [ "$(echo "$a" | wc -w)" = 8 ] && [ "$a" = "$b" ] && echo "ok: $scheme: 8 ids, twice the same" \
    || fail "$scheme: '$a' vs '$b'"
  grep -q "dummy FP8 e4m3 Linear weights" "$TMP/err" && echo "ok: $scheme summary" || fail "summary: $(cat "$TMP/err")"
done
Q=(--load-format dummy --quantization fp8 --fp8-scheme block)
if command -v mpirun >/dev/null; then
  MPI=(timeout 120 mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS -x ASAN_OPTIONS
       -x LSAN_OPTIONS -x UBSAN_OPTIONS)
  one=$(OMP_NUM_THREADS=1 "$FOLIO" generate --model "$M" "${Q[@]}" "${G[@]}" 2>"$TMP/err") || fail "TP 1: $(cat "$TMP/err")"
  two=$(OMP_NUM_THREADS=1 "${MPI[@]}" -np 2 "$FOLIO" generate --model "$M" "${Q[@]}" "${G[@]}" 2>"$TMP/err") || fail "TP 2: $(cat "$TMP/err")"
  [ -n "$one" ] && [ "$one" = "$two" ] && echo "ok: block TP 2 gives one rank's ids ($two)" || fail "TP 2 '$two' vs TP 1 '$one'"
  OMP_NUM_THREADS=1 "${MPI[@]}" -np 4 "$FOLIO" generate --model "$M" "${Q[@]}" "${G[@]}" >/dev/null 2>"$TMP/err"
  grep -q "layer 'model.layers.0.self_attn.q_proj': the column-parallel split over 4 ranks cuts a 128x128 weight block" "$TMP/err" \
    && echo "ok: TP 4 names the cut block" || fail "TP 4 cut: $(cat "$TMP/err")"
else
  echo "skipped: TP (no mpirun)"
fi
expect_error "--fp8-scheme alone" "--fp8-scheme goes with --quantization fp8" -- \
  generate --model "$M" --load-format dummy --fp8-scheme block --max-tokens 8
expect_error "bad --fp8-scheme" "--fp8-scheme: unknown scheme 'tensor'" -- \
  generate --model "$M" --load-format dummy --quantization fp8 --fp8-scheme tensor --max-tokens 8
expect_error "no --load-format dummy" "--quantization fp8 needs --load-format dummy" -- \
  generate --model "$M" --quantization fp8 --max-tokens 8
finish
