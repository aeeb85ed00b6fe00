#!/usr/bin/env bash
# `folio serve` against a hostile-but-fair client (issue #13, the server's items), each check
# named by its item: 1 descriptors and connections (the open-file limit raised and respected,
# no spinning or log flood past it, no thread per connection, a cheap 503 past
# --max-connections, the idle timeout); 2 unknown fields (no forged log lines, no memory kept);
# 3 stop strings bounded; 4 request bodies bounded in memory (per client 429, all clients 503,
# 401 before the body with --api-key); 5 /tokenize and /detokenize behind the key and bounded;
# 8 admission counts sequences and tokens, n x prompts capped; 9 the small 400s, 415 and 401.
# Socket-level probes: tests/server/limits.py. Each server must exit 0 on SIGTERM.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"
command -v prlimit >/dev/null || { echo "SKIPPED: prlimit (util-linux) not installed"; exit 77; }
PROBE=(python3 "$SRC/tests/server/limits.py")
probe() { "${PROBE[@]}" "$@" || failures=$((failures + 1)); }
JSON=(-H 'Content-Type: application/json')
server_pid() { sed -nE 's/.*; pid ([0-9]+) .*/\1/p' "$1" | head -n1; }
stopped() {
  stop_server
  [ "$SERVER_RC" = 0 ] && echo "ok: $1: SIGTERM exits 0" || fail "$1: exit status $SERVER_RC after SIGTERM"
}

# ---- item 1: descriptors, connections, threads, idle timeout ----
# fds 200 (soft = hard): 400 idle connections cannot all be held; before, libmicrohttpd spun on
# accept() and logged "Too many open files" without end
if SERVER_LAUNCH="prlimit --nofile=200:200" start_server "$TMP/s1.log"; then
held=$(sed -nE 's/.*limits: ([0-9]+) connections served at once \(([0-9]+) held open\).*/\2/p' "$TMP/s1.log")
[ -n "$held" ] && [ "$held" -lt 200 ] && echo "ok: 1: connections sized from RLIMIT_NOFILE 200 ($held held open)" \
  || fail "1: connection limit not sized from the open-file limit: $(grep limits "$TMP/s1.log")"
probe fd_flood "$PORT" "$(server_pid "$TMP/s1.log")" "$TMP/s1.log" 400
stopped "1 (fd limit)"
else fail "1: server start under an open-file limit of 200"; fi

# soft 256, hard 4096: raised at start; --max-connections 8: the 9th gets a cheap 503;
# --idle-timeout 2: a silent connection goes after 2 s
if SERVER_LAUNCH="prlimit --nofile=256:4096" start_server "$TMP/s2.log" --max-connections 8 --idle-timeout 2; then
pid=$(server_pid "$TMP/s2.log")
soft=$(awk '/Max open files/ { print $4 }' "/proc/$pid/limits")
[ "$soft" = 4096 ] && grep -q "raised the open-file limit from 256 to 4096" "$TMP/s2.log" \
  && echo "ok: 1: the soft open-file limit raised to the hard one (256 -> $soft)" \
  || fail "1: soft open-file limit $soft, expected 4096: $(head -5 "$TMP/s2.log")"
probe cheap_reject "$PORT" 8
probe idle_close "$PORT" 2
stopped "1 (--max-connections)"
else fail "1: server start with --max-connections and --idle-timeout"; fi

# ---- one server for items 2-9: a key, small limits, and a chat template that fails on null ----
python3 - "$MODEL/tokenizer_config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = ("{{ bos_token }}{% for m in messages %}User: {{ m['content'] + '' }}\n"
                      "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")
json.dump(c, open(sys.argv[1], "w"))
PY
K=(-H 'Authorization: Bearer sekrit')
if start_server "$TMP/s3.log" --api-key sekrit --max-num-seqs 4 --max-queue 0 --max-queue-tokens 1000 \
  --max-body-bytes 1048576 --max-buffered-bytes 3145728 --max-buffered-bytes-per-client 2097152; then
C=$BASE/v1/completions

# item 2: a field name with a newline, ESC and a forged log line
export FOLIO_TEST_API_KEY=sekrit
probe forged_field "$PORT" "$TMP/s3.log"

# item 3: stop strings bounded (and item 9: "" as [""])
stops=$(python3 -c 'import json; print(json.dumps(["s%d" % i for i in range(65)]))')
expect_http "3: 65 stop strings" 400 "at most 64" "${K[@]}" "${JSON[@]}" -d "{\"prompt\": \"a\", \"stop\": $stops}" "$C"
long=$(head -c 3000 /dev/zero | tr '\0' 'x')
expect_http "3: 6000 bytes of stop strings" 400 "at most 4096" "${K[@]}" "${JSON[@]}" \
  -d "{\"prompt\": \"a\", \"stop\": [\"$long\", \"y$long\"]}" "$C"
expect_http "3: four stop strings are fine" 200 '"text_completion"' "${K[@]}" "${JSON[@]}" \
  -d '{"prompt": "Once", "max_tokens": 3, "stop": ["a", "b", "c", "d"]}' "$C"

# item 4: bodies: per client (429), all clients (503), 401 before the body
probe budget "$PORT" 1048576 3145728 2097152
unset FOLIO_TEST_API_KEY
probe early_401 "$PORT"

# item 5: /tokenize and /detokenize behind the key, bounded (a context's worth: 64 KiB here)
expect_http "5: /tokenize without the key" 401 'API key' "${JSON[@]}" -d '{"prompt": "Once"}' "$BASE/tokenize"
expect_http "5: /detokenize without the key" 401 'API key' "${JSON[@]}" -d '{"tokens": [1]}' "$BASE/detokenize"
expect_http "5: /tokenize with the key" 200 '"tokens":[1,' "${K[@]}" "${JSON[@]}" -d '{"prompt": "Once"}' "$BASE/tokenize"
python3 -c 'import json; print(json.dumps({"prompt": "Once upon a time. " * 6000}))' > "$TMP/tok.json"
python3 -c 'import json; print(json.dumps({"tokens": [403] * 30000}))' > "$TMP/detok.json"
expect_http "5: a 108 KB /tokenize" 413 'max-tokenize-bytes' "${K[@]}" "${JSON[@]}" --data-binary @"$TMP/tok.json" "$BASE/tokenize"
expect_http "5: a 150 KB /detokenize" 413 'max-tokenize-bytes' "${K[@]}" "${JSON[@]}" --data-binary @"$TMP/detok.json" "$BASE/detokenize"
expect_http "5: /health needs no key" 200 '' "$BASE/health"
expect_http "5: /metrics needs no key" 200 'folio:' "$BASE/metrics"

# item 8: n x prompts capped; admission counts sequences and tokens
expect_http "8: n x prompts over --max-num-seqs" 400 '"param":"n"' "${K[@]}" "${JSON[@]}" \
  -d '{"prompt": ["a", "b", "c"], "n": 2}' "$C"
# queue_full NAME BACKGROUND-BODY WANT: while BACKGROUND-BODY runs, a one-sequence request gets
# 429 naming WANT (before, each request counted as one, whatever it fanned out to). An attempt
# whose background request ended before the probe was answered proves nothing (a loaded
# machine can be that slow): up to 5 attempts; admission that ignores the fan-out fails them all.
queue_attempt() {
  local bg=$1 cpid
  code=
  curl -s "${K[@]}" "${JSON[@]}" -d "$bg" "$C" -o "$TMP/bg.json" & cpid=$!
  for _ in $(seq 100); do  # the background request in the engine first
    [ "$(metric num_requests_running)" != 0 ] && break
    sleep 0.02
  done
  for _ in $(seq 100); do
    code=$(curl -s -o "$TMP/body" -w '%{http_code}' "${K[@]}" "${JSON[@]}" \
      -d '{"prompt": "Once", "max_tokens": 100, "ignore_eos": true}' "$C")
    [ "$code" = 429 ] && break
    kill -0 $cpid 2>/dev/null || break
    sleep 0.02
  done
  wait $cpid
}
queue_full() {
  local name=$1 bg=$2 want=$3 code=
  for attempt in 1 2 3 4 5; do
    queue_attempt "$bg"
    [ "$code" = 429 ] && break
    echo "note: 8: $name: attempt $attempt got $code (the background request may have ended first)"
  done
  [ "$code" = 429 ] && grep -q "$want" "$TMP/body" && echo "ok: 8: $name -> 429 $(head -c 200 "$TMP/body")" \
    || fail "8: $name: status $code $(head -c 300 "$TMP/body")"
  grep -q '"finish_reason":"length"' "$TMP/bg.json" || fail "8: $name: the running request: $(head -c 200 "$TMP/bg.json")"
}
queue_full "4 sequences running (2 prompts x n 2), --max-num-seqs 4 --max-queue 0" \
  '{"prompt": ["Once", "Once"], "n": 2, "max_tokens": 480, "ignore_eos": true}' "sequences in flight"
queue_full "962 tokens in flight + 101, --max-queue-tokens 1000" \
  '{"prompt": "Once", "n": 2, "max_tokens": 480, "ignore_eos": true}' "tokens in flight"

# item 9: the small ones
expect_http '9: "stop": ""' 400 '"param":"stop"' "${K[@]}" "${JSON[@]}" -d '{"prompt": "a", "stop": ""}' "$C"
expect_http "9: repetition_penalty 0" 400 '"param":"repetition_penalty"' "${K[@]}" "${JSON[@]}" \
  -d '{"prompt": "a", "repetition_penalty": 0}' "$C"
expect_http "9: min_tokens above max_tokens" 400 '"param":"min_tokens"' "${K[@]}" "${JSON[@]}" \
  -d '{"prompt": "a", "min_tokens": 10, "max_tokens": 5}' "$C"
expect_http "9: min_tokens above the default max_tokens" 400 '"param":"min_tokens"' "${K[@]}" "${JSON[@]}" \
  -d '{"prompt": "a", "min_tokens": 100}' "$C"
expect_http "9: stream_options without stream" 400 '"param":"stream_options"' "${K[@]}" "${JSON[@]}" \
  -d '{"prompt": "a", "stream_options": {"include_usage": true}}' "$C"
expect_http "9: a template error for content: null" 400 'chat template' "${K[@]}" "${JSON[@]}" \
  -d '{"messages": [{"role": "user", "content": null}]}' "$BASE/v1/chat/completions"
grep -qF "$TMP" "$TMP/body" && fail "9: the 400 shows the server's model path: $(cat "$TMP/body")" \
  || echo "ok: 9: ... without the server's paths"
expect_http "9: a non-JSON Content-Type" 415 'application/json' "${K[@]}" -H 'Content-Type: text/plain' \
  -d '{"prompt": "a"}' "$C"
expect_http "9: a form-encoded body (curl -d)" 415 'application/json' "${K[@]}" -d '{"prompt": "a"}' "$C"
expect_http "9: an unknown /v1 route without the key" 401 'API key' "$BASE/v1/nothing"
expect_http "9: an unknown /v1 route with the key" 404 'no such route' "${K[@]}" "$BASE/v1/nothing"
expect_http "9: a wrong key of the right length" 401 'API key' -H 'Authorization: Bearer sekriT' \
  "${JSON[@]}" -d '{"prompt": "a"}' "$C"
expect_http "still serving" 200 '"usage"' "${K[@]}" "${JSON[@]}" -d '{"prompt": "Once", "max_tokens": 3}' "$C"
stopped "items 2-9"
else fail "2-9: server start with the limits of items 2-9"; fi

# ---- what memory the server keeps: default limits ----
if start_server "$TMP/s4.log"; then
pid=$(server_pid "$TMP/s4.log")
probe unknown_rss "$PORT" "$pid"    # item 2: 30 distinct 3 MB field names
probe stalled_rss "$PORT" "$pid"    # item 4: 20 stalled 16 MB uploads from one address
probe tokenize_stall "$PORT"        # item 5: a full-size /tokenize holds nothing else up
stopped "default limits"
else fail "server start with the default limits"; fi
finish
