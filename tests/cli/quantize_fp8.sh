#!/usr/bin/env bash
# folio quantize --format fp8: stories260K to a compressed-tensors FP8_DYNAMIC checkpoint
# (--scheme dynamic: per-channel weight scales, per-token activations) and to a block FP8 one
# (--scheme block: 128x128 weight_scale_inv, activations per token and group of 128); the
# safetensors headers and config.json checked; then both loaded and run on the CPU backend:
# held-out perplexity within 3% of the float model's and the first 16 greedy tokens equal to
# its; option errors.
set -uo pipefail
. "$(dirname "$0")/common.inc"
TEXT="$SRC/tests/fixtures/text/heldout_stories.txt"
for scheme in dynamic block; do
  "$FOLIO" quantize --model "$STORIES" --out "$TMP/$scheme" --format fp8 --scheme "$scheme" \
    >"$TMP/log" 2>&1 || fail "quantize --scheme $scheme failed: $(cat "$TMP/log")"
done
python3 - "$TMP" <<'PY' && echo "ok: headers and configs" || fail "header or config check failed"
import json, struct, sys
def header(d):
    with open(f"{d}/model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))
d = sys.argv[1]
h = header(f"{d}/dynamic")
assert h["model.layers.0.self_attn.q_proj.weight"]["dtype"] == "F8_E4M3"
assert h["model.layers.0.mlp.down_proj.weight"]["shape"] == [64, 172]
assert h["model.layers.0.mlp.down_proj.weight_scale"] == {**h["model.layers.0.mlp.down_proj.weight_scale"], "dtype": "F32", "shape": [64, 1]}
q = json.load(open(f"{d}/dynamic/config.json"))["quantization_config"]
g = q["config_groups"]["group_0"]
assert q["quant_method"] == "compressed-tensors" and q["format"] == "float-quantized", q
assert g["weights"]["type"] == "float" and g["weights"]["strategy"] == "channel", g
assert g["input_activations"]["dynamic"] and g["input_activations"]["strategy"] == "token", g
assert q["ignore"] == ["lm_head"], q
h = header(f"{d}/block")
assert h["model.layers.0.mlp.down_proj.weight"]["dtype"] == "F8_E4M3"
assert h["model.layers.0.mlp.down_proj.weight_scale_inv"]["shape"] == [1, 2]
assert h["model.layers.0.mlp.gate_proj.weight_scale_inv"]["shape"] == [2, 1]
q = json.load(open(f"{d}/block/config.json"))["quantization_config"]
assert q == {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
             "weight_block_size": [128, 128]}, q
PY
ppl() { "$FOLIO" score --model "$1" --text "$TEXT" 2>/dev/null | sed -n 's/^perplexity \([0-9.]*\) .*/\1/p'; }
ids() { "$FOLIO" generate --model "$1" --prompt "Once upon a time" --temperature 0 --max-tokens 16 --print-ids 2>/dev/null | tail -1; }
base=$(ppl "$STORIES"); base_ids=$(ids "$STORIES")
[ -n "$base" ] || fail "no perplexity for the float model"
for scheme in dynamic block; do
  p=$(ppl "$TMP/$scheme")
  awk -v p="$p" -v b="$base" 'BEGIN { exit !(p != "" && p < 1.03 * b) }' \
    && echo "ok: $scheme perplexity $p (float $base)" \
    || fail "$scheme perplexity '$p' not within 3% of the float model's $base"
  [ "$(ids "$TMP/$scheme")" = "$base_ids" ] && echo "ok: $scheme greedy ids equal the float model's" \
    || fail "$scheme greedy ids differ: $(ids "$TMP/$scheme") vs $base_ids"
done
expect_error "scheme without fp8" "--scheme goes with --format fp8" -- quantize --model "$STORIES" --out "$TMP/a" --scheme block
expect_error "group size with fp8" "--group-size goes with --format int" -- quantize --model "$STORIES" --out "$TMP/a" --format fp8 --group-size 32
expect_error "bad scheme" "--scheme: unknown scheme 'tensor'" -- quantize --model "$STORIES" --out "$TMP/a" --format fp8 --scheme tensor
expect_error "bad format" "--format: unknown format 'fp4'" -- quantize --model "$STORIES" --out "$TMP/a" --format fp4
finish
