#!/usr/bin/env bash
# Tensor parallelism on the CPU: `mpirun -np N folio ...` (rank 0 schedules and samples and
# broadcasts every step plan; the others follow) prints exactly what one rank prints.
#   - greedy ids: every fixture at TP 2, the fixtures whose sizes divide at TP 4 (KV heads
#     replicated where there are fewer than ranks), stories260K at TP 2 and 4 (its reference);
#   - quantized fixtures (quant_*), each listed in QUANT_TP: the same greedy ids as one rank
#     where every row-parallel shard holds whole groups or the checkpoint is act-order (partial
#     groups padded), else a refusal naming the cut quantization group;
#   - seeded sampling (temperature, top-p, top-k) on stories260K: the same ids at TP 2 (one
#     sampler on every backend);
#   - a TP size that does not divide fails at start naming the dimension;
#   - folio score --logits-out at TP 2 and 4: logits within 1e-5 of one rank;
#   - --requests (batching, prefix cache, preemption, copy-on-write forks, seeded sampling):
#     the same ids and text at TP 2, logprobs within 1e-4;
#   - stdout is rank 0's alone.
# Every run under `timeout`, so a hang fails the test instead of stalling CI.
set -uo pipefail
. "$(dirname "$0")/common.inc"
command -v mpirun >/dev/null || { echo "SKIPPED: no mpirun"; exit 77; }
export OMP_NUM_THREADS=1 FOLIO_STEP_TIMEOUT=60
MPI=(timeout 120 mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS -x FOLIO_STEP_TIMEOUT
     -x ASAN_OPTIONS -x LSAN_OPTIONS -x UBSAN_OPTIONS)
TOK=${FOLIO_TP_TOKENS:-24}

# Over two float32 files: max |a-b| and max of |a-b| - 1e-5 (1 + |a|) (atol = rtol = 1e-5),
# or "size" when their lengths differ.
f32_maxdiff() {
  [ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] || { echo size; return; }
  paste <(od -An -v -f -w4 "$1") <(od -An -v -f -w4 "$2") |
    awk '{ d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1; e = d - 1e-5 * (1 + a);
           if (d > m) m = d; if (e > w) w = e } END { printf "%.3g %.3g\n", m, (w > 0 ? w : 0) }'
}

gen() { # gen NP MODEL -> greedy ids (stdout only)
  local np=$1 model=$2
  if [ "$np" = 1 ]; then
    "$FOLIO" generate --model "$model" --temperature 0 --ignore-eos --max-tokens "$TOK" --print-ids 2>"$TMP/err.1"
  else
    "${MPI[@]}" -np "$np" "$FOLIO" generate --model "$model" --temperature 0 --ignore-eos \
      --max-tokens "$TOK" --print-ids 2>"$TMP/err.$np"
  fi
}

# TP sizes every dimension of a config divides (heads, FFN; KV heads divide or are divided).
divides() { # divides CONFIG NP
  awk -v np="$2" -F'[:,]' '
    /"num_attention_heads"/ { h = $2 + 0 } /"num_key_value_heads"/ { kv = $2 + 0 }
    /"intermediate_size"/ { f = $2 + 0 }
    END { if (!kv) kv = h; exit !(h % np == 0 && f % np == 0 && (kv % np == 0 || np % kv == 0)) }' "$1"
}

start=$(date +%s)
for dir in "$FIXTURES"/*/ "$STORIES/"; do
  [ -f "$dir/config.json" ] || continue
  name=$(basename "$dir")
  case "$name" in quant_*|fp8_*) continue ;; esac # QUANT_TP below
  ref=$(gen 1 "$dir") || { fail "$name: one rank failed: $(tail -1 "$TMP/err.1")"; continue; }
  for np in 2 4; do
    if ! divides "$dir/config.json" "$np"; then continue; fi
    [ "$np" = 4 ] && [ "$name" != llama_mha_f32 ] && [ "$name" != llama_linear_mqa ] &&
      [ "$name" != stories260K ] && [ "$name" != llama_gqa_tied ] && continue # CI time
    got=$(gen "$np" "$dir")
    rc=$?
    if [ "$rc" != 0 ]; then fail "$name TP $np: exit $rc: $(grep error "$TMP/err.$np" | head -2)"
    elif [ "$got" = "$ref" ]; then echo "ok: $name TP $np: the same $TOK greedy ids"
    else fail "$name TP $np: ids differ: '$got' vs '$ref'"; fi
  done
done

# Quantized fixtures: "name tp expectation" rows; same: TP ids equal one rank's; cut: refused,
# the row-parallel inputs (48 or 96 per rank at TP 2, 64 at TP 4) cutting a group (32, 128).
# Groups are contiguous there, so the split must fall on group boundaries; act-order
# (quant_gptq_actorder_g32: g_idx scatters every group) pads the partial groups instead.
# FP8: cutblock: refused, a 64-row shard cuts a 128 x 128 weight block; close: per-token
# activation scales are taken per rank on row-parallel inputs (as vLLM), so TP 2 may leave the
# one-rank ids after a while: it must run and agree on the first 8 ids (docs/quantization.md).
QUANT_TP="quant_awq_g32 2 cut
quant_awq_g64_tp 2 same
quant_awq_g64_tp 4 same
quant_ct_8bit_g32 2 cut
quant_ct_asym_g128_tp 2 same
quant_ct_asym_g128_tp 4 cut
quant_ct_asym_g32 2 cut
quant_ct_channel 2 same
quant_ct_sym_g32_bf16 2 cut
quant_gptq_8bit_g64 2 same
quant_gptq_actorder_g32 2 same
quant_gptq_actorder_g32 4 same
quant_gptq_v1_sym_g32 2 cut
quant_gptq_v2_asym_g32 2 cut
fp8_block 2 cutblock
fp8_ct_static 2 same
fp8_ct_channel 2 close"
for dir in "$FIXTURES"/quant_*/ "$FIXTURES"/fp8_*/; do
  name=$(basename "$dir")
  grep -q "^$name " <<<"$QUANT_TP" || fail "$name: a quantized fixture missing from QUANT_TP"
done
while read -r -u 3 name np want; do
  dir="$FIXTURES/$name"
  [ -f "$dir/config.json" ] || { fail "$name: QUANT_TP names a missing fixture"; continue; }
  ref=$(gen 1 "$dir") || { fail "$name: one rank failed: $(tail -1 "$TMP/err.1")"; continue; }
  got=$(gen "$np" "$dir")
  rc=$?
  if [ "$want" = cut ] || [ "$want" = cutblock ]; then
    msg="cuts quantization group"; [ "$want" = cutblock ] && msg="cuts a 128x128 weight block"
    if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "$msg" "$TMP/err.$np"; then
      echo "ok: $name TP $np: refused, the split $msg (exit $rc)"
    else fail "$name TP $np: expected the '$msg' error, exit $rc: $(grep error "$TMP/err.$np" | head -1)"; fi
  elif [ "$rc" != 0 ]; then fail "$name TP $np: exit $rc: $(grep error "$TMP/err.$np" | head -2)"
  elif [ "$want" = close ]; then
    if [ "$(cut -d' ' -f1-8 <<<"$got")" = "$(cut -d' ' -f1-8 <<<"$ref")" ] &&
       [ "$(wc -w <<<"$got")" = "$TOK" ]; then
      echo "ok: $name TP $np: runs, the first 8 of $TOK greedy ids equal one rank's"
    else fail "$name TP $np: expected the first 8 ids of '$ref', got '$got'"; fi
  elif [ "$got" = "$ref" ]; then echo "ok: $name TP $np: the same $TOK greedy ids"
  else fail "$name TP $np: ids differ: '$got' vs '$ref'"; fi
done 3<<<"$QUANT_TP"

# stories260K against its float64 reference at TP 2 (all 199 ids, as in generate_stories.sh).
if [ -d "$STORIES" ]; then
  want=$(sed -E 's/.*"greedy_ids": *\[([^]]*)\].*/\1/' "$STORIES/reference.json" | tr -d ' ' | tr ',' ' ')
  got=$("${MPI[@]}" -np 2 "$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 199 --print-ids 2>"$TMP/err")
  [ "$got" = "$want" ] && echo "ok: stories260K TP 2: 199 ids equal reference.json" || fail "stories260K TP 2 differs from reference.json"
  # text output (tokenizer on rank 0 only) and exactly one rank's stdout
  one=$("$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 60 2>/dev/null)
  two=$("${MPI[@]}" -np 2 "$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 60 2>/dev/null)
  [ -n "$one" ] && [ "$one" = "$two" ] && echo "ok: TP 2 text output equals one rank's" || fail "TP 2 text: '$two' vs '$one'"
  # seeded sampling: TP 2 draws the tokens one rank draws (and they are not the greedy ones)
  samp=(generate --model "$STORIES" --temperature 0.8 --top-p 0.9 --top-k 40 --seed 7 --ignore-eos --max-tokens 60 --print-ids)
  s1=$("$FOLIO" "${samp[@]}" 2>"$TMP/err.1")
  s2=$("${MPI[@]}" -np 2 "$FOLIO" "${samp[@]}" 2>"$TMP/err.2")
  if [ -z "$s1" ] || [ "$s1" != "$s2" ]; then fail "stories260K sampled TP 2: '$s2' vs '$s1'"
  elif [ "$s1" = "$(echo "$want" | cut -d' ' -f1-60)" ]; then fail "stories260K --temperature 0.8 gave the greedy ids"
  else echo "ok: stories260K TP 2: the same 60 sampled ids (--temperature 0.8 --top-p 0.9 --top-k 40 --seed 7)"; fi
fi

# A TP size that does not divide: a clear error at start, naming the dimension.
rc=0
"${MPI[@]}" -np 3 "$FOLIO" generate --model "$FIXTURES/llama_gqa_tied" --max-tokens 2 >"$TMP/out" 2>"$TMP/err" || rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "num_key_value_heads 2 neither divides nor is divided by 3 ranks" "$TMP/err"; then
  echo "ok: TP 3 on 2 KV heads fails naming num_key_value_heads (exit $rc)"
else fail "TP 3 on llama_gqa_tied: exit $rc: $(grep error "$TMP/err" | head -2)"; fi

# Logits of every position, TP 2 and 4 against one rank.
for model in "$STORIES" "$FIXTURES/llama_gqa_tied" "$FIXTURES/qwen2_bias_tied"; do
  [ -d "$model" ] || continue
  name=$(basename "$model")
  ids="1,$(seq -s, 5 3 100)"
  "$FOLIO" score --model "$model" --prompt-ids "$ids" --logits-out "$TMP/l1.f32" >"$TMP/s1" 2>"$TMP/err" || { fail "$name score failed"; continue; }
  for np in 2 4; do
    divides "$model/config.json" "$np" || continue
    "${MPI[@]}" -np "$np" "$FOLIO" score --model "$model" --prompt-ids "$ids" --logits-out "$TMP/l$np.f32" >"$TMP/s$np" 2>"$TMP/err" \
      || { fail "$name score TP $np failed: $(grep error "$TMP/err" | head -1)"; continue; }
    read -r maxd worst <<<"$(f32_maxdiff "$TMP/l1.f32" "$TMP/l$np.f32")"
    if [ "$maxd" = size ]; then fail "$name score TP $np: logits file sizes differ"
    elif awk -v w="$worst" 'BEGIN { exit !(w <= 0) }'; then echo "ok: $name score TP $np: logits within 1e-5 (max |diff| $maxd)"
    else fail "$name score TP $np: max |diff| $maxd exceeds 1e-5 (1 + |x|)"; fi
    [ "$(wc -l <"$TMP/s$np")" = 1 ] || fail "$name score TP $np printed $(wc -l <"$TMP/s$np") lines"
  done
done

# --requests at TP 2: batching, prefix caching, preemption, n > 1 forks (copy-on-write block
# copies travel in the plan), seeded sampling on rank 0: identical result lines.
if [ -d "$STORIES" ]; then
  awk 'BEGIN { srand(7); pre = "1"; for (i = 0; i < 20; i++) pre = pre "," (3 + int(rand() * 500));
    for (r = 0; r < 40; r++) { ids = (r % 2) ? pre : "1";
      for (i = 0; i < r % 9; i++) ids = ids "," (3 + int(rand() * 500));
      line = "{\"prompt_ids\": [" ids "], \"max_tokens\": " (4 + r % 23);
      if (r % 3 == 0) line = line ", \"temperature\": 0";
      else if (r % 3 == 1) line = line ", \"temperature\": 0.9, \"top_p\": 0.9, \"seed\": " r;
      else line = line ", \"temperature\": 1.0, \"n\": 3, \"seed\": " r ", \"logprobs\": 2";
      print line "}" } }' > "$TMP/req.jsonl"
  args=(generate --model "$STORIES" --requests "$TMP/req.jsonl" --num-kv-blocks 24 --max-num-seqs 16 --max-num-batched-tokens 64 --max-model-len 96)
  "$FOLIO" "${args[@]}" >"$TMP/r1.jsonl" 2>"$TMP/r1.err" || fail "--requests one rank failed: $(tail -1 "$TMP/r1.err")"
  "${MPI[@]}" -np 2 "$FOLIO" "${args[@]}" >"$TMP/r2.jsonl" 2>"$TMP/r2.err" || fail "--requests TP 2 failed: $(grep error "$TMP/r2.err" | head -1)"
  pre=$(sed -nE 's/.* ([0-9]+) preemptions.*/\1/p' "$TMP/r2.err")
  # ids, text and finish reasons exactly; logprobs within 1e-4 (TP sums in another order)
  floats() { grep -oE -- '-?[0-9]+\.[0-9]+(e-?[0-9]+)?' "$1"; }
  shape() { sed -E 's/-?[0-9]+\.[0-9]+(e-?[0-9]+)?/F/g' "$1"; }
  lpdiff=$(paste <(floats "$TMP/r1.jsonl") <(floats "$TMP/r2.jsonl") |
    awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.2g", m }')
  if [ -s "$TMP/r1.jsonl" ] && cmp -s <(shape "$TMP/r1.jsonl") <(shape "$TMP/r2.jsonl") &&
     [ "$(floats "$TMP/r1.jsonl" | wc -l)" = "$(floats "$TMP/r2.jsonl" | wc -l)" ] &&
     awk -v d="$lpdiff" 'BEGIN { exit !(d <= 1e-4) }'; then
    echo "ok: --requests TP 2: $(wc -l <"$TMP/r2.jsonl") result lines with the same ids and text as one rank, logprobs within $lpdiff (${pre:-?} preemptions)"
  else fail "--requests TP 2 differs (logprobs max |diff| $lpdiff): $(diff <(shape "$TMP/r1.jsonl") <(shape "$TMP/r2.jsonl") | head -3 | cut -c1-300)"; fi
fi

# The launch script for one node runs the same thing.
if [ -d "$STORIES" ]; then
  got=$(FOLIO_MPIRUN_EXTRA="--oversubscribe" timeout 120 bash "$SRC/launch/folio-mpirun" -np 2 "$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 20 --print-ids 2>"$TMP/err")
  [ -n "$got" ] && [ "$got" = "$(echo "$want" | cut -d' ' -f1-20)" ] && echo "ok: launch/folio-mpirun -np 2" || fail "launch/folio-mpirun: '$got' ($(tail -2 "$TMP/err"))"
fi
echo "tp_equivalence: $(( $(date +%s) - start )) s"
finish
