#!/usr/bin/env bash
# Run ON A MACHINE WITH 2 GPUs (after tests/gpu/stage.sh here): tensor parallelism on the CUDA
# backend. (a) mpirun -np 2 folio generate --device cuda --dtype float32 on stories260K and on
# HF fixtures whose heads, FFN and vocabulary divide by 2 gives exactly one rank's greedy ids
# (and the reference's); (b) the same in bfloat16, TP 2 against TP 1; (c) folio bench latency
# and throughput on the Llama-3-8B shape (dummy weights, bf16) at TP 1 and TP 2, and a TP 2
# profile (eager) with the NCCL all-reduce's share of a decode step. Prints a summary table.
# Argument: the staged folder (default .carry/gpu); uses only what is inside it and
# launch/folio-mpirun (NCCL_NVLS_ENABLE=0, --bind-to none, one GPU per local rank).
#   run(command="bash .carry/tpcuda/run_tp_checks.sh .carry/tpcuda", carry=[".carry/tpcuda"],
#       kind="nvidia-h200-x2")
# QUICK=1 leaves out the benches.
set -uo pipefail
cd "$(dirname "$0")/../.." # the repository root, from tests/gpu/ or from .carry/<name>/
BIN=${1:-.carry/gpu}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
MPIRUN=$PWD/launch/folio-mpirun
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export LD_LIBRARY_PATH=$BIN/lib:${LD_LIBRARY_PATH:-}
export FOLIO_MPIRUN_EXTRA="-x LD_LIBRARY_PATH ${FOLIO_MPIRUN_EXTRA:-}"
FOLIO=$BIN/folio
LOG=${OUT:-/tmp}/tp_checks.log
: > "$LOG"
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
echo "== $(date -u +%Y-%m-%dT%H:%MZ) $gpus GPU(s): $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
[ "$gpus" -ge 2 ] || { echo "SKIPPED: needs >= 2 GPUs"; exit 77; }
results=()
record() { results+=("$(printf '%-44s %s' "$1" "$2")"); }

json_ids() { # file key -> space-separated ids
  tr -d ' \n' < "$1" | sed -E "s/.*\"$2\":\[([^]]*)\].*/\1/" | tr ',' ' '
}
gen() { # np dtype model n [prompt ids, comma-separated]; prints the ids
  local np=$1 dt=$2 model=$3 n=$4 prompt=${5:-} args
  args=(generate --device cuda --dtype "$dt" --bind none --model "$model" --temperature 0
        --max-tokens "$n" --ignore-eos --print-ids)
  [ -n "$prompt" ] && args+=(--prompt-ids "$prompt")
  if [ "$np" = 1 ]; then timeout 90 "$FOLIO" "${args[@]}" 2>>"$LOG"
  else timeout 90 "$MPIRUN" -np "$np" "$FOLIO" "${args[@]}" 2>>"$LOG"; fi
}
check_model() { # label dir
  local label=$1 dir=$2 ref=$2/reference.json want prompt n t1 t2 b1 b2
  want=$(json_ids "$ref" greedy_ids)
  prompt=$(json_ids "$ref" prompt_ids | tr ' ' ',')
  grep -q '"prompt_ids"' "$ref" || prompt="" # none: the BOS id
  n=$(echo "$want" | wc -w)
  t1=$(gen 1 float32 "$dir" "$n" "$prompt"); t2=$(gen 2 float32 "$dir" "$n" "$prompt")
  echo "== $label f32: TP1 [$t1]"; echo "   TP2 [$t2]"; echo "   ref [$want]"
  if [ -n "$t2" ] && [ "$t2" = "$t1" ]; then
    [ "$t2" = "$want" ] && record "$label f32 TP2 = TP1 = reference" PASS \
                        || record "$label f32 TP2 = TP1 (reference differs)" PASS
  else record "$label f32 TP2 = TP1" FAIL; fi
  b1=$(gen 1 bfloat16 "$dir" "$n" "$prompt"); b2=$(gen 2 bfloat16 "$dir" "$n" "$prompt")
  echo "== $label bf16: TP1 [$b1]"; echo "   TP2 [$b2]"
  if [ -n "$b2" ] && [ "$b2" = "$b1" ]; then record "$label bf16 TP2 = TP1" PASS
  else
    same=0; a1=($b1); a2=($b2)
    for i in "${!a1[@]}"; do [ "${a1[$i]}" = "${a2[$i]:-}" ] || break; same=$((same + 1)); done
    record "$label bf16 TP2 = TP1" "DIFFER after $same of ${#a1[@]} ids (rounding of the split sums)"
  fi
}

[ -d "$BIN/stories260K" ] && check_model stories260K "$BIN/stories260K"
FIX=$BIN/src/tests/fixtures/models
for fx in llama_bias qwen2_bias_tied qwen3_qknorm llama_gqa_tied; do
  [ -d "$FIX/$fx" ] && check_model "$fx" "$FIX/$fx"
done

bench() { # label np, then folio bench arguments
  local label=$1 np=$2; shift 2
  echo "== TP $np: folio bench $*"
  local cmd=("$FOLIO" bench "$@" --device cuda --model "$BIN/configs/llama-3-8b" --load-format dummy)
  if [ "$np" = 1 ]; then timeout 150 "${cmd[@]}" > "$LOG.bench" 2>&1
  else timeout 150 "$MPIRUN" -np "$np" "${cmd[@]}" > "$LOG.bench" 2>&1; fi
  grep -v '^folio: loaded' "$LOG.bench" | tail -30
  local line
  line=$(grep -E 'per output token|output tokens/s|all-reduce|logits all-gather|total ' "$LOG.bench" | sed -E 's/ +/ /g' | tr '\n' ';')
  record "$label" "${line:-FAIL}"
}
if [ -z "${QUICK:-}" ]; then
  bench "8B TP2 latency b1 128/128" 2 latency --batch-size 1 --input-len 128 --output-len 128 --num-iters 3 --num-warmup 1
  bench "8B TP1 latency b1 128/128" 1 latency --batch-size 1 --input-len 128 --output-len 128 --num-iters 3 --num-warmup 1
  bench "8B TP2 throughput 500 req 128/128" 2 throughput --num-prompts 500 --input-len 128 --output-len 128
  FOLIO_PROFILE=1 bench "8B TP2 profile b1 (eager)" 2 latency --batch-size 1 --input-len 128 --output-len 32 --num-iters 1 --num-warmup 1
fi

echo; echo "== summary (TP2 target <= 2.8 ms/token on H200, floor 1.9 ms)"
printf '%s\n' "${results[@]}"
! printf '%s\n' "${results[@]}" | grep -q FAIL
