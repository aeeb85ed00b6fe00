#!/usr/bin/env bash
# `folio serve` under load (tests/server/load.js): 200 concurrent streaming clients with mixed
# lengths, some disconnecting mid-stream; no lost or duplicated tokens, no unexpected errors,
# and every KV block free afterwards (from /metrics). Then: a client that disconnects
# mid-stream frees its blocks at once; --max-queue gives 429 with Retry-After; sessions (the
# second turn prefills only its new tokens, reports the rest as usage's cached_tokens and
# answers as the full request would); SIGTERM finishes an in-flight request and exits 0.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"
command -v node >/dev/null || { echo "SKIPPED: node not installed"; exit 77; }
N=${FOLIO_LOAD_CLIENTS:-200}
JSON='Content-Type: application/json'

start_server "$TMP/server.log" --max-num-seqs 64 --num-kv-blocks 512 || { echo "FAIL: server start"; exit 1; }
start=$(date +%s.%N)
node "$SRC/tests/server/load.js" "$BASE" "$N" || fail "load test"
echo "load test: $(echo "$(date +%s.%N) - $start" | bc) s"
for _ in $(seq 50); do [ "$(metric kv_cache_blocks_used)" = 0 ] && break; sleep 0.1; done
used=$(metric kv_cache_blocks_used); running=$(metric num_requests_running)
[ "$used" = 0 ] && [ "$running" = 0 ] && echo "ok: every KV block free afterwards ($(metric kv_cache_num_blocks) blocks)" \
  || fail "after the load: $used KV blocks used, $running running"
errs=$(curl -s "$BASE/metrics" | grep -c '^folio:http_errors_total' || true)
[ "$errs" = 0 ] && echo "ok: no error responses" || fail "error responses: $(curl -s "$BASE/metrics" | grep '^folio:http_errors_total')"
gen=$(metric generation_tokens_total)
echo "generation tokens: $gen"

# disconnect mid-stream: the request is cancelled and its blocks freed
cut_stream "Once upon a time" 400 || fail "disconnect: the stream did not start"
for _ in $(seq 20); do [ "$(metric kv_cache_blocks_used)" = 0 ] && break; sleep 0.05; done
[ "$(metric kv_cache_blocks_used)" = 0 ] && [ "$(metric num_requests_running)" = 0 ] \
  && echo "ok: a disconnected stream frees its blocks" || fail "disconnect: $(metric kv_cache_blocks_used) blocks still used"
grep -q "finish=abort" "$TMP/server.log" && echo "ok: disconnect logged as abort" || fail "no abort in the log"

# sessions: turn 2 prefills only its new tokens and answers as the full request would
C=$BASE/v1/completions
r1=$(curl -s "$C" -H "$JSON" -d '{"prompt": [1, 403, 407, 261, 378], "max_tokens": 12, "temperature": 0, "session_id": 42, "return_token_ids": true, "ignore_eos": true}')
out1=$(echo "$r1" | python3 -c 'import json,sys; print(",".join(map(str, json.load(sys.stdin)["choices"][0]["token_ids"])))')
q0=$(metric prefix_cache_queries_total); h0=$(metric prefix_cache_hits_total)
r2=$(curl -s "$C" -H "$JSON" -d '{"prompt": [13, 450, 2], "max_tokens": 12, "temperature": 0, "session_id": 42, "return_token_ids": true, "ignore_eos": true}')
q1=$(metric prefix_cache_queries_total); h1=$(metric prefix_cache_hits_total)
p2=$(echo "$r2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens"])')
[ "$p2" = 3 ] && echo "ok: session turn 2 reports 3 prompt tokens" || fail "turn 2 prompt_tokens $p2: $r2"
computed=$(( (q1 - q0) - (h1 - h0) ))
# the new tokens plus turn 1's last sampled token, which never went through the forward
[ "$computed" -le 4 ] && echo "ok: turn 2 prefilled $computed new tokens ($((h1 - h0)) from the session's KV)" \
  || fail "turn 2 prefilled $computed tokens (queries $((q1 - q0)), hits $((h1 - h0)))"
# usage.prompt_tokens_details.cached_tokens: the context reused from the session's KV, i.e. the
# context (the conversation so far + this turn's prompt: the metric's queries) minus what was
# prefilled. prompt_tokens counts this turn's prompt alone, so cached_tokens may exceed it.
c2=$(echo "$r2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["prompt_tokens_details"]["cached_tokens"])')
[ "$c2" -gt 0 ] && [ "$c2" = $(( (q1 - q0) - computed )) ] \
  && echo "ok: turn 2 usage reports $c2 cached tokens (context $((q1 - q0)) - prefilled $computed)" \
  || fail "turn 2 cached_tokens $c2, expected $(( (q1 - q0) - computed )): $r2"
full=$(curl -s "$C" -H "$JSON" -d "{\"prompt\": [1, 403, 407, 261, 378, $out1, 13, 450, 2], \"max_tokens\": 12, \"temperature\": 0, \"return_token_ids\": true, \"ignore_eos\": true}")
t2=$(echo "$r2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["token_ids"])')
tf=$(echo "$full" | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["token_ids"])')
[ "$t2" = "$tf" ] && echo "ok: session turn 2 == the full request ($t2)" || fail "session turn 2 $t2 vs full $tf"

# SIGTERM with a request in flight: it completes, then exit 0
curl -s "$C" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 300, "ignore_eos": true}' -o "$TMP/inflight.json" &
cpid=$!
# SIGTERM once it runs (a fixed sleep lost the race on a loaded machine: the signal came first)
for _ in $(seq 100); do [ "$(metric num_requests_running)" = 1 ] && break; sleep 0.05; done
stop_server
wait $cpid
grep -q '"finish_reason":"length"' "$TMP/inflight.json" && echo "ok: in-flight request finished during shutdown" \
  || fail "in-flight request: $(head -c 200 "$TMP/inflight.json")"
[ "$SERVER_RC" = 0 ] && echo "ok: exit 0 after SIGTERM" || fail "exit status $SERVER_RC"

# --max-queue: beyond max-num-seqs running + max-queue waiting -> 429 with Retry-After
start_server "$TMP/server2.log" --max-num-seqs 1 --max-queue 0 || fail "server start"
# the one slot kept busy (one long request after another) until a probe has seen the 429
(while [ ! -e "$TMP/probed" ]; do
  curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 500, "ignore_eos": true}' -o /dev/null
done) &
busy=$!
code=
for _ in $(seq 100); do  # probe until the background requests fill the queue
  code=$(curl -s -D "$TMP/hdr" -o "$TMP/body" -w '%{http_code}' "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "a", "max_tokens": 2}')
  [ "$code" = 429 ] && break
  sleep 0.02
done
touch "$TMP/probed"
[ "$code" = 429 ] && grep -qi '^Retry-After:' "$TMP/hdr" && echo "ok: 429 with Retry-After" \
  || fail "queue full: status $code $(cat "$TMP/body")"
wait $busy
stop_server
finish
