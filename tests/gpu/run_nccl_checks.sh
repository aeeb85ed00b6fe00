#!/usr/bin/env bash
# Run ON A GPU MACHINE with 2 or more GPUs (after tests/gpu/stage.sh here): NCCL all-reduce and
# all-gather correctness and bus bandwidth under mpirun, 2 ranks and, with 4 GPUs, 4 ranks;
# then a TP=2 stories260K run of folio on the CPU backend. Argument: the staged folder
# (default .carry/gpu).
#   run(command="bash tests/gpu/run_nccl_checks.sh .carry/gpu", carry=[".carry"], kind=nvidia-h200-x2)
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.carry/gpu}
CONFIGS=configs; [ -d "$BIN/src/configs" ] && CONFIGS=$BIN/src/configs
STORIES=$CONFIGS/stories260K
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export LD_LIBRARY_PATH=$PWD/$BIN/lib:${LD_LIBRARY_PATH:-}
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
echo "== $(date -u +%Y-%m-%dT%H:%MZ) $gpus GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
[ "$gpus" -ge 2 ] || { echo "SKIPPED: needs >= 2 GPUs"; exit 77; }
status=0
for np in 2 4; do
  [ "$gpus" -ge "$np" ] || continue
  echo "== test_gpu_nccl, $np ranks"
  timeout 300 mpirun -np "$np" --bind-to none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH \
    "$BIN/test_gpu_nccl"
  rc=$?; echo "== test_gpu_nccl np $np: exit $rc"; [ "$rc" = 0 ] || status=1
done
echo "== more ranks than GPUs must fail clearly"
out=$(timeout 120 mpirun -np $((gpus + 1)) --oversubscribe --bind-to none -x LD_LIBRARY_PATH \
  "$BIN/test_gpu_nccl" 2>&1); rc=$?
echo "$out" | grep -E "share GPU|visible GPU" | head -2
[ "$rc" != 0 ] && [ "$rc" != 124 ] || { echo "FAIL: np $((gpus + 1)) exit $rc"; status=1; }
if [ -d "$STORIES" ]; then
  want=$(sed -E 's/.*"greedy_ids": *\[([^]]*)\].*/\1/' "$STORIES/reference.json" | tr -d ' ' | tr ',' ' ')
  got=$(timeout 120 bash launch/folio-mpirun -np 2 "$BIN/folio" generate --model "$STORIES" --temperature 0 --max-tokens 199 --print-ids --verbose)
  [ "$got" = "$want" ] && echo "ok: folio-mpirun -np 2 generate (cpu) equals the reference" || { echo "FAIL: TP 2 generate"; status=1; }
fi
exit $status
