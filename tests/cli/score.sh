#!/usr/bin/env bash
# `folio score`: perplexity of stories260K's own greedy story is low (a broken forward gives a
# high one), and --logits-out writes float32 [n_tokens][vocab].
set -uo pipefail
. "$(dirname "$0")/common.inc"
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }

ids=$(sed -E 's/.*"greedy_ids": *\[([^]]*)\].*/\1/' "$STORIES/reference.json" | tr -d ' ' | cut -d, -f1-64)
out=$("$FOLIO" score --model "$STORIES" --prompt-ids "1,$ids" --logits-out "$TMP/logits.f32" 2>"$TMP/err") || fail "score failed: $(cat "$TMP/err")"
ppl=$(echo "$out" | sed -nE 's/^perplexity ([0-9.]+) over 64 tokens$/\1/p')
[ -n "$ppl" ] || fail "unexpected output: $out"
awk -v p="$ppl" 'BEGIN { exit !(p > 1.0 && p < 3.0) }' && echo "ok: perplexity $ppl" || fail "perplexity $ppl outside (1, 3)"
size=$(stat -c %s "$TMP/logits.f32")
[ "$size" = $((65 * 512 * 4)) ] && echo "ok: logits file $size bytes" || fail "logits file is $size bytes, expected $((65 * 512 * 4))"
finish
