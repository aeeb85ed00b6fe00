#!/usr/bin/env bash
# A hung rank is found in seconds once the job is warm, and named: under `mpirun -np 2` on the
# CPU backend, FOLIO_FAULT=R:hang:6 (rank R stops in step 6; its watchdog still answers) or
# R:stop:6 (the whole process stops: nothing answers) must end the job well inside
# FOLIO_STEP_TIMEOUT (60 s here) because the step limit adapts to the measured step time
# (floor FOLIO_STEP_TIMEOUT_FLOOR=2 s here), with an error line naming the rank and its host.
# Meanwhile `folio serve`'s /health answers 503 once the engine has made no progress for
# FOLIO_HEALTH_STALL seconds (1 here) with a request in flight.
set -uo pipefail
. "$(dirname "$0")/common.inc"
command -v mpirun >/dev/null || { echo "SKIPPED: no mpirun"; exit 77; }
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }
export OMP_NUM_THREADS=1 FOLIO_STEP_TIMEOUT=60 FOLIO_STEP_TIMEOUT_FLOOR=2
HOST=$(hostname)
LIMIT=${FOLIO_HANG_LIMIT_S:-20}   # seconds a hung job may take to end (mpirun start included)
MPI=(mpirun --oversubscribe --bind-to none -np 2 -x FOLIO_FAULT -x FOLIO_STEP_TIMEOUT
     -x FOLIO_STEP_TIMEOUT_FLOOR -x FOLIO_HEALTH_STALL -x OMP_NUM_THREADS -x ASAN_OPTIONS
     -x LSAN_OPTIONS -x UBSAN_OPTIONS)

secs_since() { echo "$(date +%s.%N) - $1" | bc; }
over() { awk -v s="$1" -v l="$2" 'BEGIN { exit !(s > l) }'; }

# hang SPEC WANT: `generate` with FOLIO_FAULT=SPEC ends non-zero within LIMIT, WANT in stderr.
hang() {
  local spec=$1 want=$2 rc=0 t0; t0=$(date +%s.%N)
  FOLIO_FAULT=$spec timeout 90 "${MPI[@]}" "$FOLIO" generate --model "$STORIES" --temperature 0 \
    --ignore-eos --max-tokens 12 --print-ids >"$TMP/out" 2>"$TMP/err" || rc=$?
  local secs; secs=$(secs_since "$t0")
  if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
    fail "FOLIO_FAULT=$spec: exit status $rc after ${secs}s: $(grep -i error "$TMP/err" | head -2)"
  elif over "$secs" "$LIMIT"; then
    fail "FOLIO_FAULT=$spec: took ${secs}s (limit ${LIMIT}s, FOLIO_STEP_TIMEOUT=$FOLIO_STEP_TIMEOUT)"
  elif ! grep -qF -- "$want" "$TMP/err"; then
    fail "FOLIO_FAULT=$spec: stderr lacks '$want': $(grep -i error "$TMP/err" | head -3)"
  else
    printf 'ok: FOLIO_FAULT=%s: exit %d in %5.2f s: %s\n' "$spec" "$rc" "$secs" \
      "$(grep -F -- "$want" "$TMP/err" | head -1 | cut -c1-220)"
  fi
}

for r in 0 1; do
  hang "$r:hang:6" "rank $r on $HOST stopped answering"
done
# the waiting rank asks rank 1, which is stopped whole and cannot answer
hang "1:stop:6" "(rank 0 on $HOST): step 6 made no progress"
grep -qF "rank 1 on $HOST stopped answering (no reply from its watchdog" "$TMP/err" \
  && echo "ok: rank 0 names the silent rank 1" \
  || fail "rank 0 does not name the stopped rank 1: $(grep -i error "$TMP/err" | head -2)"

# /health: 503 while the engine is stalled on a hung rank, then the job ends naming it
. "$(dirname "$0")/server.inc"
export FOLIO_HEALTH_STALL=1 FOLIO_STEP_TIMEOUT_FLOOR=8 FOLIO_FAULT=1:hang:10
SERVER_LAUNCH="${MPI[*]}" start_server "$TMP/serve.log" --num-kv-blocks 64 \
  || { fail "two-rank server did not start"; finish; }
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/health")
[ "$code" = 200 ] && echo "ok: /health 200 before the hang" || fail "/health before the hang: $code"
curl -s "$BASE/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model":"stories","prompt":"Once upon a time","max_tokens":40,"temperature":0}' \
  >/dev/null 2>&1 &
t0=$(date +%s.%N)
code=
for _ in $(seq 50); do
  code=$(curl -s -o "$TMP/health" -w '%{http_code}' --max-time 2 "$BASE/health")
  [ "$code" = 503 ] && break
  sleep 0.2
done
secs=$(secs_since "$t0")
if [ "$code" = 503 ] && grep -q "no progress" "$TMP/health"; then
  echo "ok: /health 503 after ${secs}s of the stall: $(cut -c1-160 "$TMP/health")"
else
  fail "/health during the stall: $code after ${secs}s: $(cat "$TMP/health")"
fi
SERVER_RC=0
wait "$SERVER_PID" || SERVER_RC=$?
SERVER_PID=
secs=$(secs_since "$t0")
if [ "$SERVER_RC" = 0 ] || over "$secs" "$LIMIT"; then
  fail "hung server: exit status $SERVER_RC after ${secs}s"
elif ! grep -qF "rank 1 on $HOST stopped answering" "$TMP/serve.log"; then
  fail "hung server: no line naming rank 1: $(grep -i error "$TMP/serve.log" | head -3)"
else
  echo "ok: the hung server ended in ${secs}s (exit $SERVER_RC) naming rank 1 on $HOST"
fi
wait
finish
