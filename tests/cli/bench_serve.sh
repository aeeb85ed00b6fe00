#!/usr/bin/env bash
# `folio bench serve` against a live `folio serve` on stories260K: every streamed request
# completes, the client counts exactly the tokens asked for (ignore_eos), which is what the
# server's own generation-token counter says, and it reports the latency percentiles.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"

start_server "$TMP/server.log" --num-kv-blocks 256 || { fail "server did not start"; finish; }
before=$(metric generation_tokens_total); before=${before%.*}
"$FOLIO" bench serve --url "$BASE" --served-model-name stories --num-prompts 40 \
  --concurrency 8 --input-len 16 --output-len 32 >"$TMP/bench.out" 2>"$TMP/bench.err" \
  || fail "bench serve failed: $(cat "$TMP/bench.err")"
cat "$TMP/bench.out"
grep -q "40 ok, 0 failed, 1280 output tokens" "$TMP/bench.out" && echo "ok: 40 requests x 32 tokens" \
  || fail "unexpected totals: $(grep ok, "$TMP/bench.out")"
for p in "time to first token" "inter-token latency" "end-to-end latency"; do
  grep -qE "$p +mean +[0-9.]+ ms +p50 +[0-9.]+ +p90 +[0-9.]+ +p99 +[0-9.]+" "$TMP/bench.out" \
    && echo "ok: $p percentiles" || fail "no $p line"
done
after=$(metric generation_tokens_total); after=${after%.*}
[ $((after - before)) = 1280 ] && echo "ok: the server generated 1280 tokens too" \
  || fail "server counter moved by $((after - before)), expected 1280"
"$FOLIO" bench serve --url "$BASE" --served-model-name stories --num-prompts 12 \
  --request-rate 40 --input-len 8 --output-len 8 >"$TMP/rate.out" 2>&1 \
  && grep -q "12 ok, 0 failed, 96 output tokens" "$TMP/rate.out" && echo "ok: Poisson arrivals" \
  || fail "rate mode: $(cat "$TMP/rate.out")"
stop_server
rc=0; "$FOLIO" bench serve --url http://127.0.0.1:1 --num-prompts 2 >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "every request failed" "$TMP/err" && echo "ok: no server -> clear error" \
  || fail "no server: exit $rc, $(cat "$TMP/err")"
finish
