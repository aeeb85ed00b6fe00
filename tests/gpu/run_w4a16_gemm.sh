#!/usr/bin/env bash
# Run ON THE GPU MACHINE, in one call (issue #12): the W4A16 warpgroup-MMA GEMMs
# (kernels/gemm/w4a16_wgmma.cu, and the warp-specialized kernels/gemm/w4a16_wgmma_ws.cu) against
# their twin. Checks: test_gpu_w4a16 (every product, and each tensor-core GEMM called directly),
# its direct-GEMM group (first three shapes) under compute-sanitizer memcheck and racecheck
# (RACECHECK=0 skips racecheck), test_gpu_forward (the quantized fixtures in bf16 against
# transformers). Then the kernel bench (both wgmma GEMMs and cuBLASLt bf16 in the same run) and
# Llama-3-8B end to end, bf16 and W4A16 (dummy weights, group 128): 1,000 requests of 128/128
# with the default GEMMs and with the first wgmma GEMM alone (FOLIO_W4A16_GEMM=wgmma), batch
# 64 and batch 1 decode. BUDGET_S (default 500) stops the end-to-end part when that many
# seconds have gone; CHECK_TIMEOUT_S (default 300) bounds the checks (a kernel that hangs fails
# them). PARTS (default "checks bench e2e") picks parts, for runs split over calls; "quick" is
# the direct-GEMM group of test_gpu_w4a16 alone; "gemv" benches the decode GEMV (n <= 16) in
# its register form (FOLIO_W4A16_GEMV=registers) against its twin, batch-1 decode of Llama-3-8B
# with each GEMV form, the GEMV bench of both forms in the same run (BENCH_SHAPES), its warps per
# stripe at n = 1 for each of GEMV_WARPS (e.g. "1 2 4 8 16"), bf16 batch-1 decode and
# Llama-3-70B W4A16 on this GPU (GEMV_70B=0 skips it). BENCH_SHAPES (space-separated names, e.g.
# "gateup8B qkv8B") limits the bench. Argument: the folder tests/gpu/stage.sh filled
# (test_gpu_w4a16, test_gpu_forward, folio).
. "$(dirname "$0")/e2e.inc"
start=$SECONDS
budget=${BUDGET_S:-500}
left() { [ $((SECONDS - start)) -lt "$budget" ] || { record "$1" "skipped (BUDGET_S)"; return 1; }; }
parts=${PARTS:-checks bench e2e}
part() { [[ " $parts " == *" $1 "* ]]; }

part quick && {
echo "== test_gpu_w4a16: each tensor-core GEMM called directly"
FOLIO_BENCH=0 FOLIO_TEST_FILTER=test_products_gemm timeout "${CHECK_TIMEOUT_S:-300}" \
  "$BIN/test_gpu_w4a16" > "$OUTDIR/w4a16_quick.log" 2>&1 &&
  record "test_gpu_w4a16 (direct GEMMs)" PASS || record "test_gpu_w4a16 (direct GEMMs)" "FAIL ($?)"
grep -E "PASSED|FAILED|FAIL|error|rel L2" "$OUTDIR/w4a16_quick.log" | head -20
}
part checks && {
echo "== test_gpu_w4a16: checks"
FOLIO_BENCH=0 timeout "${CHECK_TIMEOUT_S:-300}" "$BIN/test_gpu_w4a16" > "$OUTDIR/w4a16.log" 2>&1 &&
  record test_gpu_w4a16 PASS || record test_gpu_w4a16 "FAIL ($?)"
grep -E "PASSED|FAILED|FAIL|error|rel L2" "$OUTDIR/w4a16.log" | head -30
export FOLIO_TEST_FILTER=test_products_gemm FOLIO_W4A16_QUICK=1 SANITIZE_TIMEOUT_S=150
sanitize memcheck test_gpu_w4a16
[ "${RACECHECK:-1}" = 0 ] || sanitize racecheck test_gpu_w4a16
unset FOLIO_TEST_FILTER FOLIO_W4A16_QUICK SANITIZE_TIMEOUT_S
gpu_tests "PASSED|FAILED|FAIL|quant_|error" test_gpu_forward
}
part bench && {
echo "== test_gpu_w4a16: the kernel bench"
: > "$OUTDIR/w4a16_bench.log"
for shape in ${BENCH_SHAPES:-all}; do
  [ "$shape" = all ] && shape=
  FOLIO_W4A16_BENCH_ONLY=1 FOLIO_W4A16_BENCH_SHAPE=$shape timeout 400 "$BIN/test_gpu_w4a16" \
    >> "$OUTDIR/w4a16_bench.log" 2>&1 || record "test_gpu_w4a16 bench $shape" "FAIL ($?)"
done
grep -E " (1|16|32|64|128|256|512|2048) \||^shape|^w4a16 bench|^GB/s|target \(" "$OUTDIR/w4a16_bench.log" | head -150
}
part gemv && {
echo "== the register GEMV against its twin (test_gpu_w4a16's edge and random products)"
for t in test_products_edges test_products_random; do
  FOLIO_W4A16_GEMV=registers FOLIO_BENCH=0 FOLIO_TEST_FILTER=$t timeout "${CHECK_TIMEOUT_S:-300}" \
    "$BIN/test_gpu_w4a16" > "$OUTDIR/gemv_check_$t.log" 2>&1 &&
    record "register GEMV: $t" PASS || record "register GEMV: $t" "FAIL ($?)"
  grep -E "PASSED|FAILED|FAIL|error" "$OUTDIR/gemv_check_$t.log" | head -8
done
W4=(--quantization w4a16 --group-size 128)
L8=(--model "$CONFIGS/llama-3-8b")
FOLIO_W4A16_GEMV=registers bench "8B w4a16 b1 128/128 (register GEMV)" latency "${L8[@]}" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 128
FOLIO_W4A16_GEMV=ring bench "8B w4a16 b1 128/128 (ring GEMV)" latency "${L8[@]}" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 128
echo "== the GEMV (n <= 16): registers against the cp.async ring, same run"
for shape in ${BENCH_SHAPES:-all}; do
  [ "$shape" = all ] && shape=
  for v in registers ring; do
    FOLIO_W4A16_GEMV=$v FOLIO_W4A16_BENCH_MAX_N=16 FOLIO_W4A16_BENCH_ONLY=1 FOLIO_W4A16_BENCH_SHAPE=$shape \
      timeout 300 "$BIN/test_gpu_w4a16" > "$OUTDIR/gemv_$v${shape//\//_}.log" 2>&1 || record "GEMV bench $v $shape" "FAIL ($?)"
    echo "-- $v"; grep -E " (1|8|16) \||^target" "$OUTDIR/gemv_$v${shape//\//_}.log"
  done
done
for w in ${GEMV_WARPS:-}; do
  FOLIO_W4A16_GEMV=registers FOLIO_W4A16_WARPS=$w FOLIO_W4A16_BENCH_MAX_N=1 FOLIO_W4A16_BENCH_ONLY=1 timeout 300 \
    "$BIN/test_gpu_w4a16" > "$OUTDIR/gemv_w$w.log" 2>&1 || record "GEMV bench warps $w" "FAIL ($?)"
  echo "-- registers, $w warps per stripe"; grep -E " 1 \|" "$OUTDIR/gemv_w$w.log"
done
bench "8B bf16 b1 128/128" latency "${L8[@]}" --batch-size 1 --input-len 128 --output-len 128
[ "${GEMV_70B:-1}" = 1 ] && FOLIO_W4A16_GEMV=registers bench "70B w4a16 b1 128/128 (one GPU, register GEMV)" latency --model "$CONFIGS/llama-3-70b" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 128 --num-iters 3
}
part e2e || { echo "== $((SECONDS - start)) s"; summary; exit; }

W4=(--quantization w4a16 --group-size 128)
L8=(--model "$CONFIGS/llama-3-8b")
left "8B 1000 x 128/128" && {
  bench "8B bf16 1000 x 128/128" throughput "${L8[@]}" --num-prompts 1000 --input-len 128 --output-len 128
  bench "8B w4a16 1000 x 128/128 (default)" throughput "${L8[@]}" "${W4[@]}" --num-prompts 1000 --input-len 128 --output-len 128
}
left "8B 1000 x 128/128 first wgmma" &&
  FOLIO_W4A16_GEMM=wgmma bench "8B w4a16 1000 x 128/128 (first wgmma)" throughput "${L8[@]}" "${W4[@]}" --num-prompts 1000 --input-len 128 --output-len 128
left "8B b64" && {
  bench "8B bf16 b64 128/128" latency "${L8[@]}" --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
  bench "8B w4a16 b64 128/128" latency "${L8[@]}" "${W4[@]}" --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
}
left "8B b1" && bench "8B w4a16 b1 128/128" latency "${L8[@]}" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 128
echo "== $((SECONDS - start)) s"
summary
