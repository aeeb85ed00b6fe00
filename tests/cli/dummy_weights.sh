#!/usr/bin/env bash
# --load-format dummy: random weights with the config's shapes and no weight files; the same
# seed gives the same tokens, and the run needs no *.safetensors at all.
set -uo pipefail
. "$(dirname "$0")/common.inc"
mkdir -p "$TMP/shape-only"
cp "$FIXTURES/qwen3_qknorm/config.json" "$TMP/shape-only/"
a=$("$FOLIO" generate --model "$TMP/shape-only" --load-format dummy --prompt-ids 1,2,3 --max-tokens 8 --temperature 0 --print-ids 2>"$TMP/err") || fail "dummy run failed: $(cat "$TMP/err")"
b=$("$FOLIO" generate --model "$TMP/shape-only" --load-format dummy --prompt-ids 1,2,3 --max-tokens 8 --temperature 0 --print-ids 2>/dev/null)
[ "$(echo "$a" | wc -w)" = 8 ] && echo "ok: 8 ids from dummy weights" || fail "expected 8 ids, got '$a'"
[ "$a" = "$b" ] && echo "ok: dummy weights are deterministic" || fail "two dummy runs differ"
grep -q "dummy weights" "$TMP/err" && echo "ok: summary says dummy" || fail "summary does not say dummy: $(cat "$TMP/err")"
finish
