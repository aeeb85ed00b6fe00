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

# --text: tokenized with the model's tokenizer; a text shorter than the context (run in steps of
# 256 tokens) scores exactly as its ids do through --prompt-ids (one prefill).
head -c 1000 "$SRC/tests/fixtures/text/heldout_stories.txt" >"$TMP/short.txt"
ids=$("$FOLIO" tokenize --model "$STORIES" --text "$(cat "$TMP/short.txt")" | tr ' ' ',')
n=$(echo "$ids" | tr ',' '\n' | wc -l)
a=$("$FOLIO" score --model "$STORIES" --prompt-ids "$ids" 2>/dev/null | awk '{print $2}')
b=$("$FOLIO" score --model "$STORIES" --text "$TMP/short.txt" 2>/dev/null | awk '{print $2}')
[ -n "$a" ] && [ "$a" = "$b" ] && echo "ok: --text over $n tokens = --prompt-ids: $b" || fail "--text $b vs --prompt-ids $a"
# a long text in windows: every token predicted once
out=$("$FOLIO" score --model "$STORIES" --text "$SRC/tests/fixtures/text/heldout_stories.txt" --window 300 --stride 100 2>"$TMP/err")
echo "$out" | grep -qE "^perplexity [0-9.]+ over [0-9]+ tokens of .*\(windows of 300 tokens, stride 100\)$" \
  && echo "ok: $out" || fail "windowed score: $out $(cat "$TMP/err")"
expect_error "text with logits-out" "--logits-out goes with --prompt-ids" -- score --model "$STORIES" --text "$TMP/short.txt" --logits-out "$TMP/l"
expect_error "window past the context" "the model's context" -- score --model "$STORIES" --text "$TMP/short.txt" --window 600
expect_error "neither ids nor text" "give --prompt-ids or --text" -- score --model "$STORIES"
finish
