#!/usr/bin/env bash
# Bad input gets one clear error line naming the problem and exit status 1, never a crash:
# unknown architecture, missing or malformed files, misshapen or missing tensors, prompts over
# the context, bad option values, and a dummy model too large for host memory.
set -uo pipefail
. "$(dirname "$0")/common.inc"
M=$FIXTURES/llama_mha_f32

mkdir -p "$TMP/gpt2"
echo '{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}' >"$TMP/gpt2/config.json"
expect_error "unknown architecture" "GPT2LMHeadModel" -- generate --model "$TMP/gpt2" --prompt-ids 1
grep -q "LlamaForCausalLM" "$TMP/err" || fail "unknown architecture: supported list not named"

expect_error "no such model dir" "config.json" -- generate --model "$TMP/nope" --prompt-ids 1

cp -r "$M" "$TMP/trunc"
head -c 20000 "$M/model.safetensors" >"$TMP/trunc/model.safetensors"
expect_error "truncated weights" "model.safetensors" -- generate --model "$TMP/trunc" --prompt-ids 1

cp -r "$M" "$TMP/garbage"
head -c 4096 /dev/urandom >"$TMP/garbage/model.safetensors"
expect_error "garbage weights" "model.safetensors" -- generate --model "$TMP/garbage" --prompt-ids 1

cp -r "$M" "$TMP/noweights"; rm "$TMP/noweights/model.safetensors"
expect_error "no weight files" "safetensors" -- generate --model "$TMP/noweights" --prompt-ids 1

cp -r "$M" "$TMP/shape"
sed -i 's/"intermediate_size": 96/"intermediate_size": 128/' "$TMP/shape/config.json"
expect_error "misshapen tensor" "expected shape [128, 64]" -- generate --model "$TMP/shape" --prompt-ids 1

cp -r "$M" "$TMP/bias"
sed -i 's/"hidden_act"/"attention_bias": true, "hidden_act"/' "$TMP/bias/config.json"
expect_error "missing tensor" "q_proj.bias" -- generate --model "$TMP/bias" --prompt-ids 1

cp -r "$M" "$TMP/badjson"; echo '{"architectures": [' >"$TMP/badjson/config.json"
expect_error "malformed config.json" "config.json" -- generate --model "$TMP/badjson" --prompt-ids 1

long=$(seq -s, 1 600 | sed 's/[0-9]\+/5/g')
expect_error "prompt over the context" "context" -- generate --model "$M" --prompt-ids "$long"
expect_error "max tokens over the context" "max_position_embeddings" -- generate --model "$M" --prompt-ids 1,2 --max-tokens 300
expect_error "id outside the vocabulary" "vocab" -- generate --model "$M" --prompt-ids 1,99999
expect_error "bad prompt ids" "--prompt-ids" -- generate --model "$M" --prompt-ids 1,x,3
expect_error "bad temperature" "--temperature" -- generate --model "$M" --temperature abc
expect_error "negative top-p" "--top-p" -- generate --model "$M" --top-p -1
expect_error "unknown option" "--frobnicate" -- generate --model "$M" --frobnicate
expect_error "missing --model" "--model" -- generate --prompt-ids 1
expect_error "bad device" "--device" -- generate --model "$M" --device tpu
expect_error "bad dtype" "--dtype" -- generate --model "$M" --dtype int3
expect_error "bad all-reduce mode" "--all-reduce" -- generate --model "$M" --all-reduce ring
expect_error "score without ids" "--prompt-ids" -- score --model "$M"
if [ -d "$SRC/configs/llama-3-70b" ]; then
  expect_error "dummy 70B on CPU" "host memory" -- generate --model "$SRC/configs/llama-3-70b" --load-format dummy --prompt-ids 1
fi
rc=0; "$FOLIO" nosuchcommand >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] && echo "ok: unknown command -> 2" || fail "unknown command: exit $rc"
finish
