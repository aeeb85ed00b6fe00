#!/usr/bin/env bash
# What the loader checks in a model directory, each on a copy of stories260K with one thing
# broken (or a small dummy config), each a clear error line or warning, never an abort:
#   - an absurd max_position_embeddings is refused naming the field; a large legitimate one
#     costs nothing, since the rope tables follow the context in use (--max-model-len);
#   - KV sizing that does not fit says what the memory went to, never a negative size;
#   - bos/eos ids outside the vocabulary (config.json, generation_config.json,
#     tokenizer_config.json) are refused naming the file, field and id;
#   - a checkpoint with more layers than num_hidden_layers is refused naming the first extra
#     tensor;
#   - NaN or infinite weights load with a warning naming the tensor.
set -uo pipefail
. "$(dirname "$0")/common.inc"
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }

# copy NAME: a fresh copy of stories260K in $TMP/NAME (its path on stdout)
copy() { rm -rf "${TMP:?}/$1"; cp -r "$STORIES" "$TMP/$1"; echo "$TMP/$1"; }
# edit FILE PY: runs the Python expression PY on the JSON object c of FILE and writes it back
edit() { python3 - "$1" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"))
PY
}

# ---- item 7: the context ----
M=$(copy maxpos)
edit "$M/config.json" 'c["max_position_embeddings"] = 2147483647'
expect_error "absurd max_position_embeddings (generate)" \
  "config.json: field 'max_position_embeddings'" -- generate --model "$M" --max-tokens 4
expect_error "absurd max_position_embeddings (serve)" \
  "config.json: field 'max_position_embeddings'" -- serve --model "$M" --port 0

# a 16M-token context and the largest head_dim accepted (4096): rope tables for all of the
# context would take 275 GB (and the rope code's buffers once held head_dim 1024 at most)
mkdir -p "$TMP/longctx"
cat >"$TMP/longctx/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 64,
 "num_hidden_layers": 1, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": 4096,
 "vocab_size": 256, "max_position_embeddings": 16777216, "bos_token_id": 1, "eos_token_id": 2}
EOF
rc=0
timeout 60 "$FOLIO" generate --model "$TMP/longctx" --load-format dummy --prompt-ids 1,5,7 \
  --max-tokens 4 --ignore-eos --print-ids >"$TMP/out" 2>"$TMP/err" || rc=$?
if [ "$rc" = 0 ] && [ "$(wc -w <"$TMP/out")" = 4 ]; then
  echo "ok: a 16M-token context, head_dim 4096: rope tables sized for the 7 tokens in use"
else
  fail "16M-token context, head_dim 4096: exit $rc: $(grep -i error "$TMP/err" | head -2)"
fi

# the KV pool does not fit: the sizes, not a negative remainder
expect_error "no room for the KV cache" \
  "no memory is left for the KV cache: --gpu-memory-utilization 0.00" -- \
  generate --model "$TMP/longctx" --load-format dummy --prompt-ids 1,5,7 --max-tokens 4 \
  --max-model-len 16 --gpu-memory-utilization 0.000001
if grep -E -- ' -[0-9]' "$TMP/err"; then fail "no room for the KV cache: a negative figure"; fi
# 16M tokens a step at 67 KB each: a 1.1 TB workspace, refused before it is allocated
expect_error "a workspace larger than memory" "the activation workspace needs" -- \
  generate --model "$TMP/longctx" --load-format dummy --prompt-ids 1,5,7 --max-tokens 4 \
  --max-num-batched-tokens 16777216

# ---- item 9: special token ids inside the vocabulary ----
M=$(copy bos)
edit "$M/config.json" 'c["bos_token_id"] = 512'
expect_error "bos_token_id beyond the vocabulary" \
  "config.json: field 'bos_token_id': token id 512 is outside the vocabulary (vocab_size 512" \
  -- generate --model "$M" --max-tokens 4
M=$(copy eos)
edit "$M/generation_config.json" 'c["eos_token_id"] = [2, 70000]'
expect_error "eos_token_id beyond the vocabulary" \
  "generation_config.json: field 'eos_token_id[1]': token id 70000 is outside the vocabulary" \
  -- generate --model "$M" --max-tokens 4
M=$(copy tokeos)
edit "$M/tokenizer.json" 'c["added_tokens"].append({"id": 600, "content": "<big>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True})'
edit "$M/tokenizer_config.json" 'c["eos_token"] = "<big>"'
expect_error "tokenizer eos_token beyond the vocabulary (generate)" \
  "tokenizer_config.json: field 'eos_token': \"<big>\" is token 600 of tokenizer.json, outside the model's vocabulary (vocab_size 512" \
  -- generate --model "$M" --max-tokens 4
expect_error "tokenizer eos_token beyond the vocabulary (serve)" \
  "tokenizer_config.json: field 'eos_token'" -- serve --model "$M" --port 0

# ---- item 9: more layers in the checkpoint than in the config ----
M=$(copy layers)
edit "$M/config.json" 'c["num_hidden_layers"] = 4'
expect_error "a checkpoint with an extra layer" \
  "tensor 'model.layers.4.input_layernorm.weight' belongs to layer 4, but config.json says num_hidden_layers is 4" \
  -- generate --model "$M" --max-tokens 4

# ---- item 9: NaN and infinite weights are named ----
M=$(copy nan)
python3 - "$M/model.safetensors" model.layers.2.mlp.up_proj.weight <<'PY'
import json, struct, sys
path, name = sys.argv[1], sys.argv[2]
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    t = json.loads(f.read(n))[name]
    assert t["dtype"] == "F32", t["dtype"]
    start = 8 + n + t["data_offsets"][0]
    f.seek(start + 4 * 3); f.write(struct.pack("<f", float("nan")))
    f.seek(start + 4 * 7); f.write(struct.pack("<f", float("-inf")))
PY
rc=0
timeout 60 "$FOLIO" generate --model "$M" --max-tokens 4 >"$TMP/out" 2>"$TMP/err" || rc=$?
want="warning: $M/model.safetensors: tensor 'model.layers.2.mlp.up_proj.weight' has 2 NaN or infinite values"
if [ "$rc" -lt 2 ] && grep -qF -- "$want" "$TMP/err"; then
  echo "ok: NaN weights: $(grep -F warning "$TMP/err")"
else
  fail "NaN weights: exit $rc, no warning naming the tensor: $(cat "$TMP/err")"
fi
# the clean model warns of nothing
timeout 60 "$FOLIO" generate --model "$STORIES" --max-tokens 4 >/dev/null 2>"$TMP/err"
grep -q "NaN" "$TMP/err" && fail "stories260K: a NaN warning: $(cat "$TMP/err")"
finish
