#!/usr/bin/env bash
# Failure never hangs a tensor-parallel job: FOLIO_FAULT=RANK:POINT makes one rank fail (at
# load, sizing its KV pool, in a step, with a corrupted step plan, or hanging in a step), and
# the whole `mpirun -np N folio generate` must exit non-zero within seconds, with an error line
# naming the failing rank and host and what went wrong. Each run is under `timeout 60`.
set -uo pipefail
. "$(dirname "$0")/common.inc"
command -v mpirun >/dev/null || { echo "SKIPPED: no mpirun"; exit 77; }
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }
export OMP_NUM_THREADS=1
HOST=$(hostname)
LIMIT=${FOLIO_FAULT_LIMIT_S:-20}   # seconds a failing job may take to end (mpirun start included)

# fault NP MODEL SPEC WANT: run with FOLIO_FAULT=SPEC; expect a non-zero exit (not timeout's
# 124) within LIMIT seconds and WANT in stderr.
fault() {
  local np=$1 model=$2 spec=$3 want=$4 rc=0
  local t0; t0=$(date +%s.%N)
  FOLIO_FAULT=$spec FOLIO_STEP_TIMEOUT=3 timeout 60 mpirun --oversubscribe --bind-to none -np "$np" \
    -x FOLIO_FAULT -x FOLIO_STEP_TIMEOUT -x OMP_NUM_THREADS -x ASAN_OPTIONS -x LSAN_OPTIONS \
    -x UBSAN_OPTIONS "$FOLIO" generate --model "$model" --temperature 0 --ignore-eos \
    --max-tokens 12 --print-ids >"$TMP/out" 2>"$TMP/err" || rc=$?
  local secs; secs=$(echo "$(date +%s.%N) - $t0" | bc)
  if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
    fail "FOLIO_FAULT=$spec (np $np): exit status $rc after ${secs}s: $(grep -i error "$TMP/err" | head -2)"
  elif ! grep -qF -- "$want" "$TMP/err"; then
    fail "FOLIO_FAULT=$spec (np $np): stderr lacks '$want': $(grep -i error "$TMP/err" | head -3)"
  elif awk -v s="$secs" -v l="$LIMIT" 'BEGIN { exit !(s > l) }'; then
    fail "FOLIO_FAULT=$spec (np $np): took ${secs}s (limit ${LIMIT}s)"
  else
    printf 'ok: FOLIO_FAULT=%-9s np %d: exit %d in %5.2f s: %s\n' "$spec" "$np" "$rc" "$secs" \
      "$(grep -F -- "$want" "$TMP/err" | head -1 | cut -c1-150)"
  fi
}

for r in 0 1; do
  fault 2 "$STORIES" "$r:load" "error (rank $r on $HOST): injected fault (FOLIO_FAULT=$r:load): rank $r fails at load"
  fault 2 "$STORIES" "$r:kv" "error (rank $r on $HOST): injected fault (FOLIO_FAULT=$r:kv): rank $r fails at kv"
  fault 2 "$STORIES" "$r:step:3" "error (rank $r on $HOST): injected fault (FOLIO_FAULT=$r:step:3): rank $r fails at step 3"
  # a corrupted plan, sent (rank 0) or received (rank 1): rank 1's checksum refuses it
  fault 2 "$STORIES" "$r:plan:2" "error (rank 1 on $HOST): plan channel: message 3 from rank 0"
  # a rank that stops making progress in a warm-up step: the step watchdog ends the job after
  # FOLIO_STEP_TIMEOUT, naming the rank (tests/cli/rank_watchdog.sh: warm steps, /health)
  fault 2 "$STORIES" "$r:hang:2" "FOLIO_STEP_TIMEOUT=3 s while warming up): rank $r on $HOST stopped answering"
done
# the last of four ranks (KV heads replicated), mid-generation
fault 4 "$FIXTURES/llama_mha_f32" "3:step:5" "error (rank 3 on $HOST): injected fault (FOLIO_FAULT=3:step:5): rank 3 fails at step 5"
# the same spec without mpirun: a single rank fails cleanly too
rc=0; FOLIO_FAULT=0:step:1 timeout 60 "$FOLIO" generate --model "$STORIES" --max-tokens 4 >/dev/null 2>"$TMP/err" || rc=$?
[ "$rc" = 1 ] && grep -q "rank 0 fails at step 1" "$TMP/err" && echo "ok: one rank, FOLIO_FAULT=0:step:1: exit 1" \
  || fail "one rank with FOLIO_FAULT=0:step:1: exit $rc: $(cat "$TMP/err")"
finish
