#!/usr/bin/env bash
# `folio serve` on stories260K against the official openai npm client (tests/server/
# openai_client.js: completions and chat, streaming and not, n > 1, logprobs, stop strings,
# seeds), then curl: every error case gets its status and an OpenAI error body naming the
# field, and the server keeps serving; /tokenize, /detokenize, /metrics, --api-key; SIGTERM
# exits 0.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"

start_server "$TMP/server.log" || { echo "FAIL: server start"; exit 1; }
NM=$(bash "$SRC/tests/server/setup_openai.sh") || { echo "SKIPPED: openai npm client unavailable"; NM=; }
if [ -n "$NM" ]; then
  NODE_PATH=$NM node "$SRC/tests/server/openai_client.js" "$BASE" || fail "openai client checks"
fi

C=$BASE/v1/completions
H=(-H 'Content-Type: application/json')
expect_http "malformed JSON" 400 'invalid JSON' "${H[@]}" -d '{"prompt": "a",' "$C"
expect_http "not an object" 400 'JSON object' "${H[@]}" -d '[1,2]' "$C"
expect_http "wrong type" 400 '"param":"max_tokens"' "${H[@]}" -d '{"prompt": "a", "max_tokens": "ten"}' "$C"
expect_http "out of range" 400 '"param":"temperature"' "${H[@]}" -d '{"prompt": "a", "temperature": -1}' "$C"
expect_http "top_p out of range" 400 'top_p' "${H[@]}" -d '{"prompt": "a", "top_p": 1.5}' "$C"
expect_http "n too large" 400 '"param":"n"' "${H[@]}" -d '{"prompt": "a", "n": 100000}' "$C"
expect_http "token id outside vocab" 400 'prompt[1]' "${H[@]}" -d '{"prompt": [1, 999999]}' "$C"
long=$(python3 -c 'print(" ".join(["once upon a time"] * 400))')
expect_http "prompt over the context" 400 "maximum context length" "${H[@]}" -d "{\"prompt\": \"$long\"}" "$C"
expect_http "max_tokens over the context" 400 '"param":"max_tokens"' "${H[@]}" -d '{"prompt": "a", "max_tokens": 100000}' "$C"
expect_http "missing prompt" 400 '"param":"prompt"' "${H[@]}" -d '{"max_tokens": 3}' "$C"
expect_http "empty messages" 400 '"param":"messages"' "${H[@]}" -d '{"messages": []}' "$BASE/v1/chat/completions"
expect_http "unsupported role" 400 'messages[0].role' "${H[@]}" -d '{"messages": [{"role": "wizard", "content": "x"}]}' "$BASE/v1/chat/completions"
expect_http "unknown model" 404 'does not exist' "${H[@]}" -d '{"model": "gpt-9", "prompt": "a"}' "$C"
expect_http "wrong method" 405 'POST' "$C"
expect_http "no such route" 404 'no such route' "$BASE/v2/nothing"
head -c 40000000 /dev/zero | tr '\0' 'a' > "$TMP/big"
expect_http "oversized body" 413 'limit' "${H[@]}" --data-binary @"$TMP/big" "$C"
expect_http "unknown fields are ignored" 200 '"text_completion"' "${H[@]}" -d '{"prompt": "a", "max_tokens": 2, "frobnicate": 1}' "$C"
grep -q "ignoring unknown request field 'frobnicate'" "$TMP/server.log" && echo "ok: unknown field logged" || fail "unknown field not logged"
expect_http "still serving" 200 '"usage"' "${H[@]}" -d '{"prompt": "Once", "max_tokens": 3}' "$C"
expect_http "tokenize" 200 '"tokens":[1,' "${H[@]}" -d '{"prompt": "Once upon a time"}' "$BASE/tokenize"
expect_http "detokenize" 200 'Once upon' "${H[@]}" -d '{"tokens": [1, 403, 407, 261, 378]}' "$BASE/detokenize"
expect_http "health" 200 '' "$BASE/health"
expect_http "metrics" 200 'folio:time_to_first_token_seconds_bucket' "$BASE/metrics"
for name in num_requests_running num_requests_waiting kv_cache_usage_perc prefix_cache_queries_total \
    prefix_cache_hits_total num_preemptions_total prompt_tokens_total generation_tokens_total \
    time_to_first_token_seconds_count inter_token_latency_seconds_count \
    e2e_request_latency_seconds_count request_queue_time_seconds_count; do
  v=$(metric "$name"); [ -n "$v" ] || fail "metric folio:$name missing"
done
echo "ok: vLLM metric names under folio:"
# the engine's step time by part: steps ran, so the backend's share is above zero
steps=$(metric engine_steps_total)
part() { curl -s "$BASE/metrics" | awk -v p="part=\"$1\"" '/^folio:engine_step_seconds_total\{/ && index($0, p) { print $2 }'; }
backend=$(part backend) plan=$(part plan) tokens=$(part tokens) loop=$(part loop)
[ "${steps:-0}" -gt 0 ] && [ -n "$plan" ] && [ -n "$tokens" ] && [ -n "$loop" ] &&
  awk -v b="${backend:-0}" 'BEGIN { exit !(b > 0) }' &&
  echo "ok: $steps engine steps, backend ${backend} s, plan ${plan} s, tokens ${tokens} s, loop ${loop} s" ||
  fail "engine step metrics: steps '$steps' backend '$backend' plan '$plan' tokens '$tokens' loop '$loop'"
# the requests' prompts (several tokens each) were prefilled: some steps carried prompt tokens
psteps=$(metric engine_prompt_steps_total)
pback=$(curl -s "$BASE/metrics" | awk '/^folio:engine_prompt_step_backend_seconds_total\{/ { print $2 }')
[ "${psteps:-0}" -ge 1 ] && [ "$psteps" -le "$steps" ] &&
  awk -v p="${pback:-0}" -v b="${backend:-0}" 'BEGIN { exit !(p > 0 && p <= b) }' &&
  echo "ok: $psteps of $steps steps carried prompt tokens, backend ${pback} s" ||
  fail "prompt step metrics: '$psteps' of '$steps' steps, backend '$pback' of '$backend' s"
grep -qE "^folio: access: .* 'POST /v1/chat/completions' 200 prompt_tokens=[0-9]+ output_tokens=[0-9]+ ms=[0-9.]+ ttft_ms=[0-9.]+ finish=[a-z]+ id=chatcmpl-" "$TMP/server.log" \
  && echo "ok: one log line per request" || fail "no request log line"
stop_server
[ "$SERVER_RC" = 0 ] && echo "ok: SIGTERM exits 0" || fail "exit status $SERVER_RC after SIGTERM"

# --api-key: 401 without the key on /v1, fine with it; chat to a model without a template: 400
rm "$MODEL/tokenizer_config.json"
cp "$STORIES/tokenizer_config.json" "$MODEL/tokenizer_config.json"
start_server "$TMP/server2.log" --api-key sekrit --max-queue 0 || fail "server start with --api-key"
C=$BASE/v1/completions
expect_http "no API key" 401 'API key' "${H[@]}" -d '{"prompt": "a"}' "$C"
expect_http "wrong API key" 401 'API key' -H 'Authorization: Bearer nope' "${H[@]}" -d '{"prompt": "a"}' "$C"
expect_http "right API key" 200 'text_completion' -H 'Authorization: Bearer sekrit' "${H[@]}" -d '{"prompt": "a", "max_tokens": 2}' "$C"
expect_http "chat without a template" 400 'no chat template' -H 'Authorization: Bearer sekrit' "${H[@]}" \
  -d '{"messages": [{"role": "user", "content": "hi"}]}' "$BASE/v1/chat/completions"
stop_server
finish
