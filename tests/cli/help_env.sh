#!/usr/bin/env bash
# `folio --help-env` lists the registered FOLIO_* variables (engine/base/env.c), and
# docs/launch.md's table holds each of them with the same default: the documentation cannot
# fall behind the registry.
set -uo pipefail
. "$(dirname "$0")/common.inc"
DOC=$SRC/docs/launch.md
"$FOLIO" --help-env >"$TMP/env" 2>&1 || fail "folio --help-env: exit status $?"
names=$(grep -E '^  FOLIO_[A-Z0-9_]+$' "$TMP/env" | tr -d ' ')
[ -n "$names" ] || fail "folio --help-env listed no variables: $(head -3 "$TMP/env")"
for v in $names; do
  default=$(grep -A2 "^  $v\$" "$TMP/env" | sed -n 's/^      unset: //p')
  row=$(grep -F "| \`$v\` |" "$DOC")
  if [ -z "$row" ]; then fail "$v: no row in docs/launch.md's table"; continue; fi
  # quotes apart ('x' in the registry is `x` in the table)
  [[ "$(tr -d "'\`" <<<"$row")" == *"| $(tr -d "'\`" <<<"$default") |"* ]] ||
    fail "$v: docs/launch.md says '$row', folio --help-env's default is '$default'"
done
echo "ok: $(echo "$names" | wc -l) variables, each in docs/launch.md with its default"
finish
