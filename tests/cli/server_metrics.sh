#!/usr/bin/env bash
# `folio serve`'s /metrics against Prometheus' own checker (promtool check metrics): scraped
# while concurrent streamed requests run (some cut off by their clients mid-stream) and again
# after. Every scrape must parse, and promtool's lint must find nothing but the one rule
# vLLM's names break by design ("metric names should not contain ':'": vLLM's `vllm:` prefix,
# here `folio:`). The served model name holds a quote, a backslash and non-ASCII text, so a
# label value that is not escaped fails the parse.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"
command -v promtool >/dev/null || { echo "SKIPPED: promtool not installed (Debian: prometheus)"; exit 77; }
JSON='Content-Type: application/json'
NAME='st"or\ies-é'

start_server "$TMP/server.log" --served-model-name "$NAME" --max-num-seqs 8 || { echo "FAIL: server start"; exit 1; }

# check_scrape LABEL: one scrape through promtool; a parse error or any lint problem other than
# the colon rule fails.
scrapes=0
check_scrape() {
  local f=$TMP/scrape.$scrapes rc=0
  scrapes=$((scrapes + 1))
  curl -s "$BASE/metrics" >"$f" || { fail "$1: scrape failed"; return; }
  promtool check metrics <"$f" >"$TMP/promtool.out" 2>&1 || rc=$?
  local other
  other=$(grep -vE "^folio:[a-z0-9_]+ metric names should not contain ':'$" "$TMP/promtool.out")
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then fail "$1: promtool exit $rc: $(head -c 400 "$TMP/promtool.out")"; return; fi
  if [ -n "$other" ]; then fail "$1: promtool: $(echo "$other" | head -5)"; return; fi
  if [ "$rc" = 3 ] && [ "$(wc -l <"$TMP/promtool.out")" = 0 ]; then fail "$1: promtool exit 3 without a problem"; return; fi
  grep -qF 'model_name="st\"or\\ies-é"' "$f" || { fail "$1: the model name label is not escaped: $(grep -m1 model_name "$f")"; return; }
  echo "ok: $1: promtool accepts $(grep -vc '^#' "$f") samples"
}

check_scrape "idle"
# load: 8 streamed requests to the end, 4 cut off by their client after the first chunk, 4 plain
pids=()
for i in $(seq 8); do
  curl -sN "$BASE/v1/completions" -H "$JSON" -d "{\"prompt\": \"Once upon a time $i\", \"max_tokens\": 450, \"ignore_eos\": true, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" -o "$TMP/stream.$i" &
  pids+=($!)
done
for i in $(seq 4); do
  cut_stream Lily 400 &
  pids+=($!)
  curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Tim", "max_tokens": 60, "ignore_eos": true}' -o /dev/null &
  pids+=($!)
done
curl -s "$BASE/nope" -o /dev/null   # an error status, counted in http_errors_total
under=0
for _ in $(seq 6); do
  r=$(metric num_requests_running)
  [ "${r:-0}" != 0 ] && under=$((under + 1))
  check_scrape "under load (running $r)"
  sleep 0.1
done
[ "$under" -gt 0 ] && echo "ok: $under scrapes saw requests running" || fail "no scrape saw a request running"
for p in "${pids[@]}"; do wait "$p"; done
for i in $(seq 8); do grep -q '"usage"' "$TMP/stream.$i" || fail "stream $i did not end with its usage"; done
for _ in $(seq 50); do [ "$(metric num_requests_running)" = 0 ] && break; sleep 0.1; done
check_scrape "after the load"
# the histograms and counters saw the load
[ "$(metric e2e_request_latency_seconds_count)" -ge 16 ] && echo "ok: e2e histogram counted $(metric e2e_request_latency_seconds_count) requests" \
  || fail "e2e histogram count $(metric e2e_request_latency_seconds_count), expected >= 16"
aborts=$(curl -s "$BASE/metrics" | sed -nE 's/^folio:request_success_total\{finished_reason="abort"[^}]*\} ([0-9.]+)$/\1/p')
[ "${aborts%.0}" = 4 ] && echo "ok: the 4 cut-off requests counted as aborted" \
  || fail "request_success_total{finished_reason=\"abort\"} is '$aborts', expected 4"
stop_server
finish
