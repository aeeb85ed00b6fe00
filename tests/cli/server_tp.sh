#!/usr/bin/env bash
# `mpirun -np 2 folio serve` (rank 0 serves and broadcasts every step plan; rank 1 follows)
# answers exactly as one rank does: greedy and seeded completions, a chat completion, a
# streamed n=2 request; SIGTERM stops the whole job with exit status 0.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"

ask() {   # ask PATH JSON: the response with the per-request id and timestamp removed
  curl -s "$BASE$1" -H 'Content-Type: application/json' -d "$2" |
    sed -E 's/"id":"[^"]*"//g; s/"created":[0-9]+//g'
}
run_all() {
  ask /v1/completions '{"model":"stories","prompt":"Once upon a time","max_tokens":24,"temperature":0}'
  ask /v1/completions '{"model":"stories","prompt":"Lily saw","max_tokens":24,"temperature":0.9,"top_p":0.9,"seed":5,"n":2}'
  ask /v1/chat/completions '{"model":"stories","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16,"temperature":0}'
  ask /v1/completions '{"model":"stories","prompt":"The dog","max_tokens":12,"temperature":0.7,"seed":9,"stream":true}'
}

start_server "$TMP/one.log" --num-kv-blocks 64 || { fail "one-rank server did not start"; finish; }
run_all >"$TMP/one.out"
stop_server

SERVER_LAUNCH="mpirun -np 2 --oversubscribe" start_server "$TMP/two.log" --num-kv-blocks 64 --tensor-parallel-size 2 \
  || { fail "two-rank server did not start"; finish; }
grep -q "tensor parallelism over all ranks" "$TMP/two.log" && echo "ok: two ranks serving" || fail "no TP line: $(cat "$TMP/two.log")"
run_all >"$TMP/two.out"
stop_server "$TMP/two.log"
[ "$SERVER_RC" = 0 ] && echo "ok: SIGTERM stops both ranks, exit 0" || fail "two-rank server exit status $SERVER_RC: $(tail -3 "$TMP/two.log")"

grep -q '"text":", there was a little girl' "$TMP/one.out" && echo "ok: one rank answers" || fail "one-rank answer: $(head -c 300 "$TMP/one.out")"
if cmp -s "$TMP/one.out" "$TMP/two.out"; then echo "ok: two ranks answer exactly as one"
else fail "answers differ: $(diff "$TMP/one.out" "$TMP/two.out" | head -c 600)"; fi
finish
