#!/usr/bin/env bash
# vLLM's `serve` flags as a vLLM user types them on `folio serve` (docs/serving.md, "vLLM's
# command line"): the model as the first operand; --tensor-parallel-size checked against the
# ranks; --chat-template FILE (or inline) in place of the model's template; --generation-config
# auto | vllm | DIR setting the requests' defaults; --max-model-len, --max-num-seqs,
# --gpu-memory-utilization; vLLM flags Folio ignores, each with a note; unknown or misspelt
# flags named with the closest flag of the subcommand.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"
JSON='Content-Type: application/json'

# ---- errors before anything runs
expect_error "tp size without mpirun" "--tensor-parallel-size 2, but this job has 1 rank" -- serve --model "$MODEL" --tensor-parallel-size 2
grep -qF "launch/folio-mpirun -np 2 folio serve" "$TMP/err" && echo "ok: it says how to launch 2 ranks" || fail "no launch line: $(cat "$TMP/err")"
expect_error "tp size on generate" "launch/folio-mpirun -np 4 folio generate" -- generate --model "$MODEL" --tensor-parallel-size 4 --prompt a
"$FOLIO" generate --model "$MODEL" --tensor-parallel-size 1 --prompt "Once" --max-tokens 3 --temperature 0 >"$TMP/out" 2>"$TMP/err" \
  && echo "ok: --tensor-parallel-size 1 runs on one rank" || fail "--tensor-parallel-size 1: $(cat "$TMP/err")"
expect_error "typo 1" "unknown option '--max-model-length': did you mean --max-model-len?" -- serve --model "$MODEL" --max-model-length 128
expect_error "typo 2" "unknown option '--servedmodel-name': did you mean --served-model-name?" -- serve --model "$MODEL" --servedmodel-name x
expect_error "typo 3" "unknown option '--gpu-memory-utilisation': did you mean --gpu-memory-utilization?" -- serve --model "$MODEL" --gpu-memory-utilisation 0.5
expect_error "typo in generate" "did you mean --temperature?" -- generate --model "$MODEL" --temprature 0
expect_error "typo in score" "did you mean --logits-out?" -- score --model "$MODEL" --logit-out x
expect_error "nothing close" "unknown option '--swap-space-gb' (see folio serve --help)" -- serve --model "$MODEL" --swap-space-gb 4
expect_error "ambiguous" "'--max-num' is ambiguous: --max-num-seqs or --max-num-batched-tokens?" -- serve --model "$MODEL" --max-num 4
expect_error "missing value" "option '--port' needs a value" -- serve --model "$MODEL" --port
expect_error "model twice" "the model is given twice" -- serve "$MODEL" --model "$MODEL"
expect_error "log flags contradict" "give one of them" -- serve --model "$MODEL" --log-requests --disable-log-requests
expect_error "chat template missing" "--chat-template: $TMP/nope.jinja" -- serve --model "$MODEL" --chat-template "$TMP/nope.jinja"
expect_error "generation config missing" "serve: --generation-config $TMP: $TMP/generation_config.json" -- serve --model "$MODEL" --generation-config "$TMP"

# ---- a model whose generation_config.json sets defaults, served as `folio serve MODEL`
cp "$MODEL/tokenizer_config.json" "$TMP/tc.json"; rm "$MODEL/generation_config.json"
echo '{"bos_token_id": 1, "eos_token_id": 2, "temperature": 0.0, "max_new_tokens": 7}' >"$MODEL/generation_config.json"
mkdir -p "$TMP/gc"; echo '{"max_new_tokens": 5, "temperature": 0.0}' >"$TMP/gc/generation_config.json"
printf '%s\n' '{{ bos_token }}{% for m in messages %}<<{{ m.role }}>> {{ m.content }}' '{% endfor %}' >"$TMP/template.jinja"

# completion_tokens N [sampling fields]: usage.completion_tokens of a completion without max_tokens
completion_tokens() {
  curl -s "$BASE/v1/completions" -H "$JSON" -d "{\"prompt\": \"Once upon a time\", \"ignore_eos\": true${1:+, $1}}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["completion_tokens"])'
}
# tokens JSON: the ids /tokenize gives for a body
tokens() { curl -s "$BASE/tokenize" -H "$JSON" -d "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])'; }
CHAT='{"messages": [{"role": "user", "content": "Lily had a dog"}], "add_generation_prompt": false}'

SERVER_POSITIONAL=1 start_server "$TMP/auto.log" --max-model-len 128 --max-num-seqs 4 --gpu-memory-utilization 0.5 \
  --trust-remote-code --disable-log-stats || { echo "FAIL: server start"; exit 1; }
echo "ok: folio serve MODEL starts"
mml=$(curl -s "$BASE/tokenize" -H "$JSON" -d '{"prompt": "a"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_model_len"])')
[ "$mml" = 128 ] && echo "ok: --max-model-len 128" || fail "--max-model-len 128: /tokenize says max_model_len $mml"
grep -qF -- "--trust-remote-code (vLLM's) changes nothing here" "$TMP/auto.log" && grep -qF -- "--disable-log-stats (vLLM's)" "$TMP/auto.log" \
  && echo "ok: ignored vLLM flags noted" || fail "no note for ignored flags: $(cat "$TMP/auto.log")"
n=$(completion_tokens); [ "$n" = 7 ] && echo "ok: auto: max_new_tokens 7 is the default max_tokens" || fail "auto: $n completion tokens, expected 7"
a1=$(curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 20, "seed": 1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
a2=$(curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 20, "seed": 2}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
[ "$a1" = "$a2" ] && echo "ok: auto: temperature 0 by default (seeds 1 and 2 agree)" || fail "auto: seeds differ: '$a1' vs '$a2'"
n=$(completion_tokens '"max_tokens": 3'); [ "$n" = 3 ] && echo "ok: a request's max_tokens still wins" || fail "max_tokens 3 gave $n"
default_chat=$(tokens "$CHAT")
stop_server

start_server "$TMP/vllm.log" --generation-config vllm --chat-template "$TMP/template.jinja" || fail "server start (vllm)"
n=$(completion_tokens); [ "$n" = 16 ] && echo "ok: vllm: the built-in default of 16 tokens" || fail "vllm: $n completion tokens, expected 16"
b1=$(curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 20, "seed": 1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
b2=$(curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 20, "seed": 2}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
[ "$b1" != "$b2" ] && echo "ok: vllm: temperature 1 by default (seeds 1 and 2 differ)" || fail "vllm: seeds agree: '$b1'"
file_chat=$(tokens "$CHAT")
want=$(tokens '{"prompt": "<<user>> Lily had a dog\n"}')
[ "$file_chat" = "$want" ] && [ "$file_chat" != "$default_chat" ] && echo "ok: --chat-template FILE renders the chat ($file_chat)" \
  || fail "--chat-template: $file_chat, expected $want (model's template: $default_chat)"
stop_server

start_server "$TMP/dir.log" --generation-config "$TMP/gc" --chat-template '{% for m in messages %}{{ m.content }}!{% endfor %}' || fail "server start (dir)"
n=$(completion_tokens); [ "$n" = 5 ] && echo "ok: DIR: its max_new_tokens 5" || fail "DIR: $n completion tokens, expected 5"
grep -qF "requests' defaults from $TMP/gc/generation_config.json: temperature=0.0 max_new_tokens=5" "$TMP/dir.log" \
  && echo "ok: the defaults are said at start" || fail "no defaults line: $(cat "$TMP/dir.log")"
inline=$(tokens "$CHAT"); want=$(tokens '{"prompt": "Lily had a dog!", "add_special_tokens": false}')
[ "$inline" = "$want" ] && echo "ok: an inline --chat-template" || fail "inline template: $inline, expected $want"
stop_server
finish
