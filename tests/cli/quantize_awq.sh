#!/usr/bin/env bash
# folio quantize --method awq on stories260K (group 32, symmetric): the checkpoint round-trips
# through `folio generate`, and on a held-out text (tests/fixtures/text/heldout_stories.txt,
# never used for calibration) its perplexity is below the RTN checkpoint's of the same
# settings (`folio score --text`, windows of 512 without overlap to keep the sanitizer run
# short), which is above the float model's. Also --calibration FILE and its errors. The table
# in docs/quantization.md comes from the same commands with the default stride (256).
set -uo pipefail
. "$(dirname "$0")/common.inc"
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }
HELDOUT=$SRC/tests/fixtures/text/heldout_stories.txt

quantize() { # NAME ARGS...: quantize stories260K into $TMP/NAME
  local name=$1; shift
  "$FOLIO" quantize --model "$STORIES" --out "$TMP/$name" --group-size 32 "$@" >"$TMP/$name.log" 2>&1 \
    || { fail "quantize $*: $(cat "$TMP/$name.log")"; return 1; }
}
ppl() { # DIR: the held-out perplexity
  "$FOLIO" score --model "$1" --text "$HELDOUT" --stride 512 2>"$TMP/err" | sed -nE 's/^perplexity ([0-9.]+) over .*/\1/p'
}

quantize awq --method awq --verbose && grep "^awq: calibrated on" "$TMP/awq.log" | sed 's/^/ok: /'
quantize rtn --method rtn
rc=0
"$FOLIO" generate --model "$TMP/awq" --prompt "Once upon a time" --max-tokens 16 --temperature 0 \
  >"$TMP/gen" 2>"$TMP/err" || rc=$?
[ "$rc" = 0 ] && [ -s "$TMP/gen" ] && echo "ok: generate on the AWQ checkpoint: $(head -c 100 "$TMP/gen" | tr '\n' ' ')" \
  || fail "generate on the AWQ checkpoint failed: $(cat "$TMP/err")"

p_float=$(ppl "$STORIES"); p_rtn=$(ppl "$TMP/rtn"); p_awq=$(ppl "$TMP/awq")
echo "held-out perplexity: float $p_float, RTN $p_rtn, AWQ $p_awq (group 32, symmetric)"
if [ -z "$p_float" ] || [ -z "$p_rtn" ] || [ -z "$p_awq" ]; then
  fail "a perplexity is missing: $(cat "$TMP/err")"
else
  awk -v a="$p_awq" -v r="$p_rtn" 'BEGIN { exit !(a < r) }' && echo "ok: AWQ $p_awq < RTN $p_rtn" \
    || fail "AWQ's perplexity $p_awq is not below RTN's $p_rtn"
  awk -v f="$p_float" -v r="$p_rtn" 'BEGIN { exit !(f < r && r < 1.5 * f) }' \
    && echo "ok: float $p_float < RTN $p_rtn < 1.5x float" || fail "RTN $p_rtn vs float $p_float out of range"
fi

# The config and the dense tensors: the folded norms differ from the input's.
python3 - "$STORIES" "$TMP/awq" <<'PY' && echo "ok: folded norms written, config as for RTN" || fail "AWQ checkpoint check failed"
import json, struct, sys
def tensors(d):
    with open(f"{d}/model.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n)); data = f.read()
    return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
name = "model.layers.1.input_layernorm.weight"
assert len(a[name]) == len(b[name]) and a[name] != b[name], "attention norm not folded"
assert a["model.embed_tokens.weight"] == b["model.embed_tokens.weight"]
q = json.load(open(f"{sys.argv[2]}/config.json"))["quantization_config"]
assert q["format"] == "pack-quantized" and q["config_groups"]["group_0"]["weights"]["group_size"] == 32
PY

# --calibration FILE: a text of our own; too short a text is refused.
head -c 1200 "$SRC/configs/calibration/stories.txt" >"$TMP/calib.txt"
quantize calib --method awq --calibration "$TMP/calib.txt" --no-clip \
  && grep -q "calibrated on .* of $TMP/calib.txt" "$TMP/calib.log" && echo "ok: --calibration FILE" \
  || fail "--calibration FILE: $(cat "$TMP/calib.log")"
echo "Once." >"$TMP/short.txt"
expect_error "calibration too short" "at least 16" -- quantize --model "$STORIES" --out "$TMP/s" --method awq --calibration "$TMP/short.txt"
expect_error "calibration missing" "cannot open" -- quantize --model "$STORIES" --out "$TMP/m" --method awq --calibration "$TMP/none.txt"
finish
