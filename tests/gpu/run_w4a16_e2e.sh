#!/usr/bin/env bash
# Run ON THE GPU MACHINE, in one call (issue #12): the 4-bit path end to end. Checks: the
# W4A16 kernels against their twins (test_gpu_w4a16, no bench), every GPU test of the forward
# (test_gpu_forward: the quantized fixtures in bf16 against transformers), a dummy 4-bit model's
# logits on the GPU (bf16) against the CPU backend's (float32) on the same drawn weights, and
# stories260K's bf16 greedy run against its float64 reference (tests/gpu/bf16_numerics.py).
# Then the benches, bf16 and W4A16 (dummy weights, group 128) in the same run: Llama-3-8B
# batch-1 decode, batch 64, TTFT of a 2,048-token prompt, 1,000 requests of 128/128, and
# Llama-3-70B W4A16 on this one GPU. Argument: the folder tests/gpu/stage.sh filled.
. "$(dirname "$0")/e2e.inc"
gpu_tests "PASSED|FAILED|FAIL|quant_|error" test_gpu_w4a16 test_gpu_forward

echo "== dummy 4-bit model: GPU bf16 logits vs CPU float32 logits (same drawn weights)"
M=$OUTDIR/shape-only; mkdir -p "$M"
cp "$FOLIO_SOURCE_DIR/tests/fixtures/models/quant_awq_g64_tp/config.json" "$M/"
Q=(--model "$M" --load-format dummy --quantization w4a16 --group-size 32 --prompt-ids 1,5,9,13,17,21,25,29)
"$BIN/folio" score "${Q[@]}" --device cpu --logits-out "$OUTDIR/dq_cpu.f32" > /dev/null 2>&1
"$BIN/folio" score "${Q[@]}" --device cuda --bind none --dtype bfloat16 --logits-out "$OUTDIR/dq_gpu.f32" 2>&1 | grep -v "^folio: \(KV\|loaded\)"
python3 - "$OUTDIR/dq_cpu.f32" "$OUTDIR/dq_gpu.f32" <<'EOF' && record "dummy w4a16: gpu bf16 = cpu f32 logits" PASS || record "dummy w4a16: gpu bf16 = cpu f32 logits" FAIL
import sys, numpy as np
a, b = (np.fromfile(p, dtype=np.float32) for p in sys.argv[1:3])
rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30)) if a.size == b.size and a.size else 1.0
print(f"{a.size} logits, relative L2 difference {rel:.2e} (limit 2e-2: bf16 activations)")
sys.exit(0 if rel < 2e-2 else 1)
EOF

echo "== stories260K in bf16 against its float64 reference"
S=$CONFIGS/stories260K
ids=$("$BIN/folio" generate --model "$S" --device cuda --bind none --dtype bfloat16 --temperature 0 --max-tokens 199 --print-ids 2>/dev/null)
refseq=$(python3 -c "import json;r=json.load(open('$S/reference.json'));print(','.join(map(str,r['prompt_ids']+r['greedy_ids'])))")
"$BIN/folio" score --model "$S" --device cuda --bind none --dtype bfloat16 --prompt-ids "$refseq" --logits-out "$OUTDIR/s260_bf16.f32" > /dev/null 2>&1
python3 tests/gpu/bf16_numerics.py --model "$S" --folio-ids "$ids" --folio-logits "$OUTDIR/s260_bf16.f32" 2>&1 | grep -v Warning | tail -25 \
  && record "bf16_numerics.py" DONE || record "bf16_numerics.py" FAIL

if [ -z "${QUICK:-}" ]; then
  W4=(--quantization w4a16 --group-size 128)
  L8=(--model "$CONFIGS/llama-3-8b")
  bench "8B bf16 b1 128/128" latency "${L8[@]}" --batch-size 1 --input-len 128 --output-len 128
  bench "8B w4a16 b1 128/128" latency "${L8[@]}" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 128
  bench "8B bf16 b64 128/128" latency "${L8[@]}" --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
  bench "8B w4a16 b64 128/128" latency "${L8[@]}" "${W4[@]}" --batch-size 64 --input-len 128 --output-len 128 --num-iters 3
  bench "8B bf16 TTFT 2048" latency "${L8[@]}" --batch-size 1 --input-len 2048 --output-len 2 --num-iters 5
  bench "8B w4a16 TTFT 2048" latency "${L8[@]}" "${W4[@]}" --batch-size 1 --input-len 2048 --output-len 2 --num-iters 5
  bench "8B bf16 1000 x 128/128" throughput "${L8[@]}" --num-prompts 1000 --input-len 128 --output-len 128
  bench "8B w4a16 1000 x 128/128" throughput "${L8[@]}" "${W4[@]}" --num-prompts 1000 --input-len 128 --output-len 128
  bench "70B w4a16 b1 128/128 (one GPU)" latency --model "$CONFIGS/llama-3-70b" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 128 --num-iters 3
  FOLIO_PROFILE=1 bench "8B w4a16 b1 profile (eager)" latency "${L8[@]}" "${W4[@]}" --batch-size 1 --input-len 128 --output-len 32 --num-iters 2 --num-warmup 1
  tail -30 "$OUTDIR/bench.log"
fi

summary
