#!/usr/bin/env bash
# Run ON THE GPU MACHINE, in one call: every GPU test (their CPU references included) and the
# benches, printing a short table to paste into docs/benchmarks.md. Argument: the folder
# tests/gpu/stage.sh filled (default .carry/gpu). With FIXTURES_OUT=DIR it also regenerates the
# transformers fixtures (tests/fixtures/make_fixtures.py) into DIR.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.carry/gpu}
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export LD_LIBRARY_PATH=$PWD/$BIN/lib:${LD_LIBRARY_PATH:-}
export FOLIO_SOURCE_DIR=$PWD FOLIO_SHARED_DIR=$PWD/$BIN

echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
results=()
record() { results+=("$(printf '%-28s %s' "$1" "$2")"); }

for t in "$BIN"/test_gpu_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  echo "== $name"
  "$t"; rc=$?
  case $rc in 0) record "$name" PASS ;; 77) record "$name" SKIPPED ;; *) record "$name" "FAIL ($rc)" ;; esac
done

echo "== folio (built on Debian 12) runs here: stories260K greedy on the CPU backend"
want=$(sed -E 's/.*"greedy_ids": *\[([^]]*)\].*/\1/' "$BIN/stories260K/reference.json" | tr -d ' ' | tr ',' ' ')
got=$("$BIN/folio" generate --model "$BIN/stories260K" --temperature 0 --max-tokens 199 --print-ids)
[ "$got" = "$want" ] && record "folio generate (cpu)" PASS || record "folio generate (cpu)" FAIL
got2=$(mpirun -np 2 "$BIN/folio" generate --model "$BIN/stories260K" --temperature 0 --max-tokens 199 --print-ids)
[ "$got2" = "$want" ] && record "mpirun -np 2 generate (cpu)" PASS || record "mpirun -np 2 generate (cpu)" FAIL

if [ -n "${FIXTURES_OUT:-}" ]; then
  echo "== regenerating transformers fixtures into $FIXTURES_OUT"
  PYTHONUNBUFFERED=1 python3 tests/fixtures/make_fixtures.py "$FIXTURES_OUT" --stories "$BIN/stories260K" \
    && record "make_fixtures.py" DONE || record "make_fixtures.py" FAIL
fi

echo; echo "== summary"
printf '%s\n' "${results[@]}"
! printf '%s\n' "${results[@]}" | grep -q FAIL
