#!/usr/bin/env bash
# Run ON THE GPU MACHINE after tests/gpu/stage.sh: issue #7's target. `folio serve --device
# cuda` on the Llama-3-8B shape (dummy weights; the staged config folder must hold a real
# Llama 3 tokenizer.json), loaded by `folio bench serve` at STREAMS concurrent streams (64;
# issue #14 asks 256), against the offline `folio bench throughput` on the same number of
# requests, lengths and STREAMS-sequence cap. Prints both output token rates and their ratio
# (target: served >= 90% of offline). MODEL_ARGS: more model options for both sides, e.g.
# "--quantization fp8" or "--kv-cache-dtype fp8"; SERVE_ARGS: options for the server only, e.g.
# "--num-kv-blocks 4096" (the offline run's KV pool: 256 sequences x 256 tokens).
#   [STREAMS=256] [MODEL_ARGS="--quantization fp8"] [SERVE_ARGS=...] bash tests/gpu/run_serve_bench.sh .carry/gpu [N_PROMPTS]
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-.carry/gpu}
CONFIGS=configs; [ -d "$BIN/src/configs" ] && CONFIGS=$BIN/src/configs
N=${2:-1024}
S=${STREAMS:-64}
read -r -a MA <<< "${MODEL_ARGS:-}"
read -r -a SA <<< "${SERVE_ARGS:-}"
export NCCL_NVLS_ENABLE=0 LD_LIBRARY_PATH=$PWD/$BIN/lib:${LD_LIBRARY_PATH:-}
MODEL=$CONFIGS/llama-3-8b
[ -f "$MODEL/tokenizer.json" ] || { echo "SKIPPED: $MODEL/tokenizer.json missing (stage a Llama 3 tokenizer)"; exit 77; }
echo "== $(date -u +%Y-%m-%dT%H:%MZ) $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"

echo "== offline: folio bench throughput ${MA[*]}, $N requests 128/128, --max-num-seqs $S"
"$BIN/folio" bench throughput --model "$MODEL" --load-format dummy "${MA[@]}" --num-prompts "$N" \
  --input-len 128 --output-len 128 --max-num-seqs "$S" 2>&1 | tee /tmp/offline.txt | grep -v "^folio: loaded"
offline=$(sed -nE 's/.*requests\/s, ([0-9.]+) output tokens\/s.*/\1/p' /tmp/offline.txt | head -1)

echo "== served: folio serve --device cuda ${MA[*]} ${SA[*]} + folio bench serve --concurrency $S"
"$BIN/folio" serve --device cuda --model "$MODEL" --load-format dummy "${MA[@]}" "${SA[@]}" --port 0 \
  --max-num-seqs "$S" --served-model-name llama > /tmp/serve.log 2>&1 &
pid=$!
port=
for _ in $(seq 1200); do
  port=$(sed -nE 's|.*on http://127.0.0.1:([0-9]+).*|\1|p' /tmp/serve.log | head -n1)
  [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  kill -0 $pid 2>/dev/null || { echo "server died:"; cat /tmp/serve.log; exit 1; }
  sleep 0.1
done
"$BIN/folio" bench serve --url "http://127.0.0.1:$port" --served-model-name llama \
  --num-prompts "$S" --concurrency "$S" --input-len 128 --output-len 16 --vocab 128000 >/dev/null 2>&1  # warm-up
"$BIN/folio" bench serve --url "http://127.0.0.1:$port" --served-model-name llama \
  --num-prompts "$N" --concurrency "$S" --input-len 128 --output-len 128 --vocab 128000 2>&1 | tee /tmp/served.txt
served=$(sed -nE 's/.*requests\/s, ([0-9.]+) output tokens\/s.*/\1/p' /tmp/served.txt | head -1)
# where the served steps' time went (warm-up included): the engine's step-time counters
curl -s "http://127.0.0.1:$port/metrics" | awk '
  /^folio:engine_steps_total/ { n = $2 }
  /^folio:engine_prompt_steps_total/ { np = $2 }
  /^folio:engine_prompt_step_backend_seconds_total/ { bp = $2 }
  /^folio:engine_step_seconds_total/ { match($0, /part="[a-z]+"/); t[substr($0, RSTART + 6, RLENGTH - 7)] = $2 }
  END { if (n > 0) printf "served engine steps: %d; per step: backend %.3f ms, plan %.3f ms, tokens %.3f ms, loop %.3f ms\n",
        n, 1e3 * t["backend"] / n, 1e3 * t["plan"] / n, 1e3 * t["tokens"] / n, 1e3 * t["loop"] / n
        if (np > 0 && n > np) printf "served steps with prompt tokens: %d, backend %.3f ms each; decode only: %d, backend %.3f ms each\n",
        np, 1e3 * bp / np, n - np, 1e3 * (t["backend"] - bp) / (n - np) }'
kill -TERM $pid; wait $pid
grep -E "KV cache|captured" /tmp/serve.log | head -3
grep -A 18 "^profile" /tmp/serve.log # with FOLIO_PROFILE=1: the server's per-kernel times
echo "== summary: offline ${offline:-?} output tokens/s, served ${served:-?} output tokens/s"
awk -v s="${served:-0}" -v o="${offline:-0}" 'BEGIN { if (o > 0) printf "served / offline = %.3f (target >= 0.90)\n", s / o }'
