#!/usr/bin/env bash
# Installs the official `openai` npm client (pinned) into a cache, reused when present:
#   $CACHE/openai/node_modules/openai
# CACHE is $FOLIO_CACHE/npm, else ~/.cache/folio/npm. Prints the node_modules path on stdout.
# Exit 77 (skip) with the reason on stderr when node/npm or the registry is unavailable.
set -euo pipefail
OPENAI_VERSION=4.104.0
CACHE="${FOLIO_CACHE:-$HOME/.cache/folio}/npm"
DIR="$CACHE/openai"
skip() { echo "SKIP: $*" >&2; exit 77; }
command -v node >/dev/null || skip "node not installed"
if [ ! -f "$DIR/node_modules/openai/version.js" ] ||
   ! grep -q "'$OPENAI_VERSION'" "$DIR/node_modules/openai/version.js"; then
    command -v npm >/dev/null || skip "npm not installed"
    mkdir -p "$DIR"
    [ -f "$DIR/package.json" ] || echo '{"private":true}' >"$DIR/package.json"
    (cd "$DIR" && timeout 300 npm install --silent --no-audit --no-fund "openai@$OPENAI_VERSION" >&2) ||
        skip "npm install openai@$OPENAI_VERSION failed (registry unreachable?)"
fi
echo "$DIR/node_modules"
