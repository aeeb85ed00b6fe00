#!/usr/bin/env bash
# `folio generate` on the real trained stories260K: greedy from BOS prints exactly the 199 ids
# of the float64 reference, and as text the story it decodes to; a text prompt continues the
# reference; a seeded sampled run repeats itself.
set -uo pipefail
. "$(dirname "$0")/common.inc"
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }

want=$(sed -E 's/.*"greedy_ids": *\[([^]]*)\].*/\1/' "$STORIES/reference.json" | tr -d ' ' | tr ',' ' ')
got=$("$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 199 --print-ids 2>"$TMP/err")
if [ "$got" = "$want" ]; then echo "ok: greedy ids match reference.json"; else
  fail "greedy ids differ from reference.json"; echo "got:  $got" >&2; echo "want: $want" >&2; fi
grep -q "generated 199 tokens" "$TMP/err" || fail "no summary line on stderr: $(cat "$TMP/err")"

text=$("$FOLIO" generate --model "$STORIES" --temperature 0 --max-tokens 199 2>/dev/null)
case "$text" in
  "Once upon a time, there was a little girl named Lily. She loved to play outside in"*) echo "ok: the story text" ;;
  *) fail "unexpected text: ${text:0:200}" ;;
esac
cont=$("$FOLIO" generate --model "$STORIES" --prompt "Once upon a time" --temperature 0 --max-tokens 20 --print-ids 2>"$TMP/err")
want20=$(echo "$want" | cut -d' ' -f5-24)
[ "$cont" = "$want20" ] && echo "ok: --prompt text continues the reference" || fail "--prompt continuation '$cont', expected '$want20'"

a=$("$FOLIO" generate --model "$STORIES" --temperature 0.8 --top-p 0.9 --seed 7 --max-tokens 40 --print-ids 2>/dev/null)
b=$("$FOLIO" generate --model "$STORIES" --temperature 0.8 --top-p 0.9 --seed 7 --max-tokens 40 --print-ids 2>/dev/null)
c=$("$FOLIO" generate --model "$STORIES" --temperature 0.8 --top-p 0.9 --seed 8 --max-tokens 40 --print-ids 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && echo "ok: seeded sampling repeats" || fail "seeded runs differ: '$a' vs '$b'"
[ "$a" != "$c" ] && echo "ok: another seed samples differently" || fail "seeds 7 and 8 gave the same ids"
finish
