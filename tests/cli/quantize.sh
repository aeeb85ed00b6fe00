#!/usr/bin/env bash
# folio quantize: stories260K to 4-bit compressed-tensors (group 32: every input size but
# down_proj's 172 divides; those stay float and are named in the ignore list), the files and
# the safetensors header checked; option errors; then `folio generate` on the result: the
# quantized model runs (its dequantized weights on the CPU backend) and, greedy, writes text.
set -uo pipefail
. "$(dirname "$0")/common.inc"
OUT=$TMP/q4
"$FOLIO" quantize --model "$STORIES" --out "$OUT" --group-size 32 --asym >"$TMP/log" 2>&1 \
  || fail "quantize failed: $(cat "$TMP/log")"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
  [ -f "$OUT/$f" ] && echo "ok: $f written" || fail "$f missing in the output"
done
python3 - "$OUT" <<'PY' && echo "ok: header and config parse" || fail "header or config check failed"
import json, struct, sys
d = sys.argv[1]
with open(f"{d}/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    size = f.seek(0, 2)
assert n % 8 == 0, n
ends = sorted(v["data_offsets"][1] for k, v in head.items() if k != "__metadata__")
assert ends[-1] == size - 8 - n, (ends[-1], size, n)
p = head["model.layers.0.self_attn.q_proj.weight_packed"]
assert p["dtype"] == "I32" and p["shape"] == [64, 8], p
assert head["model.layers.0.self_attn.q_proj.weight_scale"]["shape"] == [64, 2]
assert head["model.layers.0.self_attn.q_proj.weight_zero_point"]["shape"] == [8, 2]
assert head["model.layers.0.mlp.down_proj.weight"]["dtype"] == "F32"
q = json.load(open(f"{d}/config.json"))["quantization_config"]
w = q["config_groups"]["group_0"]["weights"]
assert q["format"] == "pack-quantized" and w["num_bits"] == 4 and w["group_size"] == 32
assert not w["symmetric"] and q["ignore"][0] == "lm_head", q
assert "model.layers.4.mlp.down_proj" in q["ignore"], q["ignore"]
PY
expect_error "gptq not yet" "--method gptq: not yet" -- quantize --model "$STORIES" --out "$TMP/a" --method gptq
expect_error "calibration without awq" "--calibration goes with --method awq" -- quantize --model "$STORIES" --out "$TMP/a" --calibration x.txt
expect_error "bits 3" "--bits" -- quantize --model "$STORIES" --out "$TMP/b" --bits 3
expect_error "output not empty" "not empty" -- quantize --model "$STORIES" --out "$OUT"
expect_error "no model" "config.json" -- quantize --model "$TMP/none" --out "$TMP/c"
"$FOLIO" quantize --model "$STORIES" --out "$TMP/pc" --group-size -1 --max-shard-size 100KB >/dev/null 2>"$TMP/err" \
  || fail "per-channel sharded quantize failed: $(cat "$TMP/err")"
[ -f "$TMP/pc/model.safetensors.index.json" ] && echo "ok: sharded with an index" || fail "no index"
rc=0
"$FOLIO" generate --model "$OUT" --prompt "Once upon a time" --max-tokens 8 --temperature 0 >"$TMP/gen" 2>"$TMP/err" || rc=$?
if [ "$rc" != 0 ]; then
  fail "generate on the quantized checkpoint failed: $(cat "$TMP/err")"
else
  [ -s "$TMP/gen" ] && echo "ok: generate runs on the quantized checkpoint: $(head -c 80 "$TMP/gen")" \
    || fail "generate printed nothing"
fi
finish
