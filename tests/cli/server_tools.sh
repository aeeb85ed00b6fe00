#!/usr/bin/env bash
# Tool calling end to end: for each format (hermes, llama3_json, mistral), a scripted model
# (tests/server/make_tool_model.py) behind `folio serve`, its format found in the chat
# template, and the official openai npm client's tool-calling flow against it
# (tests/server/tools_client.js). Then the server's refusals: tools on a model whose template
# shows no format (400, unless tool_choice is "none"), --tool-call-parser none, a bad name.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"

# stopped NAME: stops the server, which must exit 0 (no crash; no leak under the sanitizers).
stopped() {
  stop_server
  [ "$SERVER_RC" = 0 ] || fail "$1: the server exited with status $SERVER_RC"
}

NM=$(bash "$SRC/tests/server/setup_openai.sh") || { echo "SKIPPED: openai npm client unavailable"; NM=; }
for fmt in hermes llama3_json mistral; do
  MODEL=$TMP/tools_$fmt
  python3 "$SRC/tests/server/make_tool_model.py" "$fmt" "$MODEL" || { fail "$fmt: make_tool_model.py"; continue; }
  start_server "$TMP/server_$fmt.log" --served-model-name tools --num-kv-blocks 512 ||
    { fail "$fmt: server start"; continue; }
  grep -q "tool calls read in the $fmt format (from the chat template)" "$TMP/server_$fmt.log" &&
    echo "ok: $fmt: format found in the chat template" || fail "$fmt: format not detected: $(cat "$TMP/server_$fmt.log")"
  if [ -n "$NM" ]; then
    NODE_PATH=$NM node "$SRC/tests/server/tools_client.js" "$BASE" "$MODEL/script.json" || fail "$fmt: openai client checks"
  fi
  stopped "$fmt"
done

# expect_http NAME STATUS SUBSTRING BODY: POST BODY to chat completions.
expect_http() {
  local name=$1 want=$2 sub=$3 body=$4 code
  code=$(curl -s -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' -d "$body" \
         "$BASE/v1/chat/completions")
  if [ "$code" != "$want" ] || ! grep -qF -- "$sub" "$TMP/body"; then
    fail "$name: status $code (want $want), body $(head -c 300 "$TMP/body")"; return
  fi
  echo "ok: $name -> $code $(head -c 160 "$TMP/body")"
}
TOOLS='"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]'
MSG='"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "max_tokens": 4'

# stories260K's test template shows no tool-call format
MODEL=$TMP/model
start_server "$TMP/server_stories.log" || fail "stories server start"
grep -q "the chat template shows no tool-call format" "$TMP/server_stories.log" && echo "ok: no format found, said once" ||
  fail "no notice of a missing format: $(cat "$TMP/server_stories.log")"
expect_http "tools without a format" 400 '"param":"tools"' "{$MSG, $TOOLS}"
expect_http "tools without a format, tool_choice none" 200 '"finish_reason"' "{$MSG, $TOOLS, \"tool_choice\": \"none\"}"
stopped "stories"

# --tool-call-parser none on a model whose template has one; --enable-auto-tool-choice accepted
MODEL=$TMP/tools_hermes
start_server "$TMP/server_none.log" --tool-call-parser none --enable-auto-tool-choice || fail "server start with --tool-call-parser none"
expect_http "--tool-call-parser none" 400 "tool-call-parser" "{$MSG, $TOOLS}"
stopped "--tool-call-parser none"
# --tool-call-parser on a model whose template shows none: the calls are read
MODEL=$TMP/model
start_server "$TMP/server_forced.log" --tool-call-parser hermes || fail "server start with --tool-call-parser hermes"
grep -q "tool calls read in the hermes format (--tool-call-parser)" "$TMP/server_forced.log" &&
  echo "ok: --tool-call-parser hermes" || fail "--tool-call-parser hermes not taken: $(cat "$TMP/server_forced.log")"
expect_http "--tool-call-parser hermes" 200 '"finish_reason"' "{$MSG, $TOOLS}"
stopped "--tool-call-parser hermes"
expect_error "unknown --tool-call-parser" "unknown tool-call parser 'pythonic'" -- serve --model "$MODEL" --tool-call-parser pythonic
finish
