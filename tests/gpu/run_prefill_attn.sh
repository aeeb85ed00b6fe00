#!/usr/bin/env bash
# Run ON THE GPU MACHINE, in one call (issue #14): the prefill attention on Hopper's warpgroup
# MMA (FOLIO_PREFILL_ATTN=wgmma) against the mma.sync kernel. Checks: test_gpu_attention with
# each (every case against the CPU twin), test_gpu_forward with the default (wgmma). Then the kernel bench (head_dim 128, 32/8 heads,
# 2k-16k tokens, bf16 and FP8 KV) and the time to first token of the Llama-3-8B shape (dummy
# weights, bf16 and FP8) with each kernel. Argument: the folder tests/gpu/stage.sh filled.
# SANITIZE=1: also compute-sanitizer (racecheck, memcheck) over the wgmma kernel's tests;
# TTFT_KERNELS="wgmma" (default "wgmma mma"): the kernels the TTFT benches run.
. "$(dirname "$0")/e2e.inc"
for k in wgmma mma; do
  echo "== test_gpu_attention, FOLIO_PREFILL_ATTN=$k"
  FOLIO_PREFILL_ATTN=$k FOLIO_BENCH=0 "$BIN/test_gpu_attention" > "$OUTDIR/attn.$k.log" 2>&1 &&
    record "test_gpu_attention ($k prefill)" PASS || record "test_gpu_attention ($k prefill)" FAIL
  grep -E "prefill|FAIL|PASSED|FAILED|mismatch" "$OUTDIR/attn.$k.log" | grep -v ": ok$" | tail -12
done
# the forward end to end with the default (wgmma) prefill: every GPU fixture against
# transformers' logits
gpu_tests "PASSED|FAILED|FAIL|error|differ" test_gpu_forward
if [ -n "${SANITIZE:-}" ]; then
  export FOLIO_PREFILL_ATTN=wgmma
  sanitize racecheck test_gpu_attention
  sanitize memcheck test_gpu_attention
  unset FOLIO_PREFILL_ATTN
fi
for k in wgmma mma; do
  echo "== test_gpu_attention bench (prefill), FOLIO_PREFILL_ATTN=$k"
  FOLIO_PREFILL_ATTN=$k FOLIO_BENCH=only "$BIN/test_gpu_attention" 2>&1 | grep "bench prefill\|bench device"
done
L8=(--model "$CONFIGS/llama-3-8b")
for q in bf16 fp8; do
  Q=(); [ $q = fp8 ] && Q=(--quantization fp8)
  for k in ${TTFT_KERNELS:-wgmma mma}; do
    FOLIO_PREFILL_ATTN=$k bench "8B $q TTFT 2048 ($k)" latency "${L8[@]}" "${Q[@]}" --batch-size 1 --input-len 2048 --output-len 2 --num-iters 5
  done
  # 16,384 tokens (issue #14: within 1.3x of the GEMM + attention roofline): Llama 3.1's
  # config, the same shapes with a 128k context
  for k in ${TTFT_KERNELS:-wgmma mma}; do
    FOLIO_PREFILL_ATTN=$k bench "8B $q TTFT 16384 ($k)" latency --model "$CONFIGS/llama-3.1-8b-instruct" "${Q[@]}" --batch-size 1 --input-len 16384 --output-len 2 --num-iters 3
  done
done
summary
