#!/usr/bin/env bash
# Run ON THE GPU MACHINE, in one call: every GPU test (their CPU references included), the
# CUDA backend end to end (stories260K greedy in float32 against reference.json, seeded
# sampling: the same ids as the CPU backend), the benches
# on the Llama-3-8B shape (dummy weights, bf16) with their rooflines and a per-kernel profile,
# printing a short table last, for docs/benchmarks.md. Argument: the folder tests/gpu/stage.sh
# filled (default .carry/gpu). With FIXTURES_OUT=DIR it also regenerates the transformers
# fixtures (tests/fixtures/make_fixtures.py) into DIR. QUICK=1 leaves out the long benches.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.carry/gpu}
CONFIGS=configs; [ -d "$BIN/src/configs" ] && CONFIGS=$BIN/src/configs
STORIES=$CONFIGS/stories260K
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export LD_LIBRARY_PATH=$PWD/$BIN/lib:${LD_LIBRARY_PATH:-}
export FOLIO_SOURCE_DIR=$PWD
[ -d "$BIN/src/tests/fixtures/models" ] && export FOLIO_SOURCE_DIR=$PWD/$BIN/src
LOG=${OUT:-/tmp}/gpu_checks.log
: > "$LOG"

echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
results=()
record() { results+=("$(printf '%-34s %s' "$1" "$2")"); }

for t in "$BIN"/test_gpu_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  [ "$name" = test_gpu_nccl ] && continue # under mpirun: tests/gpu/run_nccl_checks.sh
  echo "== $name"
  "$t" > "$LOG.$name" 2>&1; rc=$?
  grep -v '^\[ *\(RUN\|OK\) ' "$LOG.$name" | grep -v '^folio: \(KV cache\|captured\|loaded\)' | tail -60
  case $rc in 0) record "$name" PASS ;; 77) record "$name" SKIPPED ;; *) record "$name" "FAIL ($rc)" ;; esac
done

want=$(sed -E 's/.*"greedy_ids": *\[([^]]*)\].*/\1/' "$STORIES/reference.json" | tr -d ' ' | tr ',' ' ')
echo "== stories260K greedy: CPU backend, and CUDA backend in float32"
got=$("$BIN/folio" generate --model "$STORIES" --temperature 0 --max-tokens 199 --print-ids)
[ "$got" = "$want" ] && record "folio generate (cpu)" PASS || record "folio generate (cpu)" FAIL
got2=$(mpirun -np 2 "$BIN/folio" generate --model "$STORIES" --temperature 0 --max-tokens 199 --print-ids)
[ "$got2" = "$want" ] && record "mpirun -np 2 generate (cpu)" PASS || record "mpirun -np 2 generate (cpu)" FAIL
got3=$("$BIN/folio" generate --device cuda --dtype float32 --bind none --model "$STORIES" --temperature 0 --max-tokens 199 --print-ids)
[ "$got3" = "$want" ] && record "generate --device cuda (f32)" PASS || record "generate --device cuda (f32)" FAIL
echo "== stories260K seeded sampling: the CUDA backend (float32) draws the CPU backend's ids"
samp=(generate --model "$STORIES" --dtype float32 --temperature 0.8 --seed 7 --max-tokens 199 --print-ids)
got4=$("$BIN/folio" "${samp[@]}" --device cpu)
got5=$("$BIN/folio" "${samp[@]}" --device cuda --bind none)
[ -n "$got4" ] && [ "$got4" = "$got5" ] && record "sampled: cuda ids = cpu ids (f32)" PASS || record "sampled: cuda ids = cpu ids (f32)" FAIL

bench() { # label, then folio bench arguments; records the result lines
  local label=$1; shift
  echo "== folio bench $*"
  timeout 150 "$BIN/folio" bench "$@" --model "$CONFIGS/llama-3-8b" --load-format dummy 2>&1 | tee "$LOG.bench" | grep -v '^folio: loaded'
  local line
  line=$(grep -E 'per output token|time to first token|output tokens/s' "$LOG.bench" | sed -E 's/ +/ /g' | tr '\n' ';')
  record "$label" "${line:-FAIL}"
}
if [ -z "${QUICK:-}" ]; then
  bench "8B b1 in128 out128" latency --batch-size 1 --input-len 128 --output-len 128
  bench "8B b1 in128 out128 eager" latency --batch-size 1 --input-len 128 --output-len 128 --num-iters 3 --enforce-eager
  bench "8B b1 in2048 out1 (TTFT)" latency --batch-size 1 --input-len 2048 --output-len 2 --num-iters 10
  FOLIO_PROFILE=1 bench "8B b1 profile (eager)" latency --batch-size 1 --input-len 128 --output-len 32 --num-iters 2 --num-warmup 1
  bench "8B b64 in128 out128" latency --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
  bench "8B 1000 req 128/128" throughput --num-prompts 1000 --input-len 128 --output-len 128
fi

if [ -n "${FIXTURES_OUT:-}" ]; then
  echo "== regenerating transformers fixtures into $FIXTURES_OUT"
  PYTHONUNBUFFERED=1 python3 tests/fixtures/make_fixtures.py "$FIXTURES_OUT" --stories "$STORIES" \
    && record "make_fixtures.py" DONE || record "make_fixtures.py" FAIL
fi

echo; echo "== summary"
printf '%s\n' "${results[@]}"
! printf '%s\n' "${results[@]}" | grep -q FAIL
