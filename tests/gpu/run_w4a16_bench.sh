#!/usr/bin/env bash
# Run on the GPU machine: the W4A16 kernels' checks against their CPU twins, then their bench
# (test_gpu_w4a16) once per block size the GEMV can take (FOLIO_W4A16_WARPS = 4, 8, 16; the
# default picks by the stripe count). DIR holds test_gpu_w4a16 and lib/ (tests/gpu/stage.sh,
# or a copy of just those).
set -uo pipefail
DIR=${1:-.carry/gpu}
export LD_LIBRARY_PATH="$DIR/lib:${LD_LIBRARY_PATH:-}" NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader
date -u +%Y-%m-%dT%H:%MZ
echo "== checks + bench, default block size"
"$DIR/test_gpu_w4a16" || exit 1
for w in ${WARPS:-2 4 8 16}; do
  echo "== bench, FOLIO_W4A16_WARPS=$w"
  FOLIO_W4A16_WARPS=$w FOLIO_W4A16_BENCH_ONLY=1 "$DIR/test_gpu_w4a16" | grep -E "^(qkv|gate|down|target)" | grep -E " 1 \||target|  8 \|"
done
