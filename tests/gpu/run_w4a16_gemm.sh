#!/usr/bin/env bash
# Run ON THE GPU MACHINE, in one call (issue #12): the W4A16 warpgroup-MMA GEMM
# (kernels/gemm/w4a16_wgmma.cu) against its twin and the mma.sync GEMM. Checks: test_gpu_w4a16
# (every product, and each tensor-core GEMM called directly), its direct-GEMM group (first three
# shapes) under compute-sanitizer memcheck and racecheck (RACECHECK=0 skips racecheck),
# test_gpu_forward (the quantized fixtures in bf16 against transformers). Then the kernel bench
# (wgmma, mma.sync and cuBLASLt bf16 in the same run) and Llama-3-8B end to end, bf16 and W4A16
# (dummy weights, group 128) with each GEMM: batch 64 decode and 1,000 requests of 128/128.
# BUDGET_S (default 500) stops the end-to-end part when that many seconds have gone. Argument:
# the folder tests/gpu/stage.sh filled (test_gpu_w4a16, test_gpu_forward, folio).
. "$(dirname "$0")/e2e.inc"
start=$SECONDS
budget=${BUDGET_S:-500}
left() { [ $((SECONDS - start)) -lt "$budget" ] || { record "$1" "skipped (BUDGET_S)"; return 1; }; }

echo "== test_gpu_w4a16: checks, then the kernel bench"
"$BIN/test_gpu_w4a16" > "$OUTDIR/w4a16.log" 2>&1 && record test_gpu_w4a16 PASS || record test_gpu_w4a16 FAIL
grep -E "PASSED|FAILED|FAIL|error|\| +(1|16|32|64|128|256|512) \||^shape|^w4a16 bench|^GB/s|target \(" "$OUTDIR/w4a16.log" | head -150
export FOLIO_TEST_FILTER=test_products_gemm FOLIO_W4A16_QUICK=1 SANITIZE_TIMEOUT_S=150
sanitize memcheck test_gpu_w4a16
[ "${RACECHECK:-1}" = 0 ] || sanitize racecheck test_gpu_w4a16
unset FOLIO_TEST_FILTER FOLIO_W4A16_QUICK SANITIZE_TIMEOUT_S
gpu_tests "PASSED|FAILED|FAIL|quant_|error" test_gpu_forward

W4=(--quantization w4a16 --group-size 128)
L8=(--model "$CONFIGS/llama-3-8b")
left "8B b64" && {
  bench "8B bf16 b64 128/128" latency "${L8[@]}" --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
  bench "8B w4a16 b64 128/128 (wgmma)" latency "${L8[@]}" "${W4[@]}" --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
  FOLIO_W4A16_GEMM=mma bench "8B w4a16 b64 128/128 (mma.sync)" latency "${L8[@]}" "${W4[@]}" --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
}
left "8B 1000 x 128/128" && {
  bench "8B bf16 1000 x 128/128" throughput "${L8[@]}" --num-prompts 1000 --input-len 128 --output-len 128
  bench "8B w4a16 1000 x 128/128 (wgmma)" throughput "${L8[@]}" "${W4[@]}" --num-prompts 1000 --input-len 128 --output-len 128
}
left "8B 1000 x 128/128 mma.sync" &&
  FOLIO_W4A16_GEMM=mma bench "8B w4a16 1000 x 128/128 (mma.sync)" throughput "${L8[@]}" "${W4[@]}" --num-prompts 1000 --input-len 128 --output-len 128
left "8B b1" && bench "8B w4a16 b1 128/128" latency "${L8[@]}" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 128
echo "== $((SECONDS - start)) s"
summary
