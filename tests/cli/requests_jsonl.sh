#!/usr/bin/env bash
# `folio generate --requests` on the real trained stories260K: 1,000 mixed requests (greedy and
# seeded sampling, shared prompt prefixes, n > 1, stop ids, penalties, logprobs, a few bad
# lines) under a KV pool far too small to hold them at once (forcing preemption) give, line for
# line, exactly what the same requests give run one at a time with a roomy pool and no prefix
# cache; the statistics line is printed; bad lines get an error naming the field.
set -uo pipefail
. "$(dirname "$0")/common.inc"
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
N=${FOLIO_REQUESTS_N:-1000}

# The requests: deterministic pseudo-random lines (awk's rand with a fixed seed).
awk -v n="$N" 'BEGIN {
  srand(12345);
  for (p = 0; p < 4; p++) { len[p] = 16 + int(rand() * 40); s = "1";
    for (i = 1; i < len[p]; i++) s = s "," (3 + int(rand() * 509)); pre[p] = s }
  for (r = 0; r < n; r++) {
    if (r % 97 == 13) { print "{\"prompt_ids\": [1, 2, 99999], \"max_tokens\": 4}"; continue }
    if (r % 97 == 41) { print "{\"prompt_ids\": [1, 5], \"temperature\": \"hot\"}"; continue }
    if (r % 97 == 77) { print "{\"prompt\": \"Once upon a time\", \"max_tokens\": 4}"; continue }
    ids = (rand() < 0.6) ? pre[int(rand() * 4)] : "1";
    extra = int(rand() * 24);
    for (i = 0; i < extra; i++) ids = ids "," (3 + int(rand() * 509));
    line = "{\"prompt_ids\": [" ids "], \"max_tokens\": " (1 + int(rand() * 80));
    u = rand();
    if (u < 0.55) line = line ", \"temperature\": 0";
    else if (u < 0.8) line = line ", \"temperature\": 0.8, \"top_p\": 0.9, \"seed\": " r;
    else line = line ", \"temperature\": 1.0, \"top_k\": 20, \"min_p\": 0.05, \"n\": 2, \"seed\": " r;
    if (rand() < 0.15) line = line ", \"ignore_eos\": true";
    if (rand() < 0.1) line = line ", \"stop_token_ids\": [" (3 + int(rand() * 509)) "]";
    if (rand() < 0.1) line = line ", \"repetition_penalty\": 1.3, \"presence_penalty\": 0.5";
    if (rand() < 0.05) line = line ", \"logprobs\": 3";
    print line "}"
  } }' > "$TMP/requests.jsonl"

start=$(date +%s.%N)
"$FOLIO" generate --model "$STORIES" --requests "$TMP/requests.jsonl" --output "$TMP/batched.jsonl" \
  --seed 1 --num-kv-blocks 48 --max-num-seqs 64 --max-num-batched-tokens 256 2>"$TMP/batched.err" \
  || fail "batched run failed: $(tail -3 "$TMP/batched.err")"
end=$(date +%s.%N)
echo "batched run: $(echo "$end - $start" | bc) s"
grep "requests in" "$TMP/batched.err" || fail "no statistics line: $(cat "$TMP/batched.err")"
grep -q "KV cache: 48 blocks" "$TMP/batched.err" || fail "no KV capacity line"
pre=$(sed -nE 's/.* ([0-9]+) preemptions.*/\1/p' "$TMP/batched.err")
[ "${pre:-0}" -gt 0 ] && echo "ok: $pre preemptions" || fail "the small KV pool forced no preemption"
lines=$(wc -l < "$TMP/batched.jsonl")
[ "$lines" = "$N" ] && echo "ok: $N result lines" || fail "$lines result lines, expected $N"
idx_ok=$(awk -F'[:,]' '{ if ($2 + 0 != NR - 1) bad++ } END { print bad + 0 }' "$TMP/batched.jsonl")
[ "$idx_ok" = 0 ] && echo "ok: results in input order" || fail "$idx_ok results out of order"
grep -q '"error":"line 14: field '"'"'prompt_ids\[2\]'"'" "$TMP/batched.jsonl" && echo "ok: bad id names the field" \
  || fail "no error naming prompt_ids[2]: $(grep error "$TMP/batched.jsonl" | head -2)"
grep -q "field 'temperature'" "$TMP/batched.jsonl" && echo "ok: bad temperature names the field" || fail "no temperature error"
sed -n '78p' "$TMP/batched.jsonl" | grep -q '"prompt_tokens":5,"outputs":\[{"text":"' && echo "ok: text prompt encoded, text returned" \
  || fail "text prompt line: $(sed -n '78p' "$TMP/batched.jsonl")"

# The same requests with another batch composition (two sequences a step, a roomy pool, no
# prefix cache, no preemption): identical results, logprobs included.
"$FOLIO" generate --model "$STORIES" --requests "$TMP/requests.jsonl" --output "$TMP/pairs.jsonl" \
  --seed 1 --max-num-seqs 2 --num-kv-blocks 96 --no-prefix-caching 2>"$TMP/pairs.err" \
  || fail "two-at-a-time run failed: $(tail -3 "$TMP/pairs.err")"
grep -q " 0 preemptions" "$TMP/pairs.err" || fail "the reference run preempted: $(tail -1 "$TMP/pairs.err")"
if cmp -s "$TMP/batched.jsonl" "$TMP/pairs.jsonl"; then
  echo "ok: batched results equal the two-at-a-time run ($(grep -c outputs "$TMP/batched.jsonl") requests)"
else
  fail "batched and two-at-a-time results differ: $(diff "$TMP/batched.jsonl" "$TMP/pairs.jsonl" | head -4)"
fi

# Greedy requests alone, each in its own run (the first $ALONE): the same result line.
ALONE=${FOLIO_REQUESTS_ALONE:-60}  # each run starts MPI (~0.4 s): a sample keeps CI short
checked=0; differ=0
while IFS= read -r i; do
  sed -n "$((i + 1))p" "$TMP/requests.jsonl" > "$TMP/one.jsonl"
  "$FOLIO" generate --model "$STORIES" --requests "$TMP/one.jsonl" --max-num-seqs 1 \
    --num-kv-blocks 40 --no-prefix-caching 2>/dev/null > "$TMP/one.out"
  want=$(sed -n "$((i + 1))p" "$TMP/batched.jsonl" | sed -E 's/^\{"index":[0-9]+,/{/')
  got=$(sed -E 's/^\{"index":[0-9]+,/{/' "$TMP/one.out")
  [ "$want" = "$got" ] || { differ=$((differ + 1)); [ $differ -le 3 ] && echo "request $i: batched $want, alone $got" >&2; }
  checked=$((checked + 1))
done < <(grep -n '"temperature": 0[,}]' "$TMP/requests.jsonl" | head -n "$ALONE" | cut -d: -f1 | awk '{ print $1 - 1 }')
[ "$differ" = 0 ] && echo "ok: $checked greedy requests give exactly their alone output" \
  || fail "$differ of $checked greedy requests differ from their alone run"
finish
