#!/usr/bin/env bash
# `folio serve`'s access line: one per request, written when it ends, with the client's address,
# the request line, the status, prompt and output tokens, milliseconds (and for a generation the
# finish and id). Checked for a plain completion, a streamed chat, a 400, a stream the client
# cuts off (status 200 as sent, finish=abort, the tokens made so far), a request whose client
# leaves before the answer (499), and a request line holding a quote and a newline (escaped);
# --log-requests adds the parameters; --disable-log-requests writes none.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"
JSON='Content-Type: application/json'
LOG=$TMP/server.log

# access_line N: the Nth access line of the log (1-based), waiting up to 5 s for it
access_line() {
  for _ in $(seq 50); do
    [ "$(grep -c '^folio: access: ' "$LOG")" -ge "$1" ] && break; sleep 0.1
  done
  grep '^folio: access: ' "$LOG" | sed -n "$1p"
}
# check_line NAME LINE REGEX: LINE matches the extended REGEX
check_line() {
  if [[ "$2" =~ $3 ]]; then echo "ok: $1: $2"; else fail "$1: '$2' does not match '$3'"; fi
}
# usage FIELD FILE: usage.FIELD of a JSON answer (the last chunk's for a stream)
usage() {
  python3 - "$1" "$2" <<'PY'
import json, sys
text = open(sys.argv[2]).read()
if text.startswith("data:"):
    chunks = [json.loads(l[5:]) for l in text.splitlines() if l.startswith("data: {")]
    print([c for c in chunks if c.get("usage")][-1]["usage"][sys.argv[1]])
else:
    print(json.loads(text)["usage"][sys.argv[1]])
PY
}
PEER='127\.0\.0\.1:[0-9]+'
MS='ms=[0-9]+\.[0-9]'

start_server "$LOG" --log-requests || { echo "FAIL: server start"; exit 1; }
n=$(grep -c '^folio: access: ' "$LOG")  # start_server's /health polls
# 1. a completion
curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once upon a time", "max_tokens": 9, "ignore_eos": true}' -o "$TMP/a.json"
n=$((n + 1)); line=$(access_line $n)
p=$(usage prompt_tokens "$TMP/a.json"); c=$(usage completion_tokens "$TMP/a.json")
check_line "completion" "$line" "^folio: access: $PEER 'POST /v1/completions' 200 prompt_tokens=$p output_tokens=$c $MS ttft_ms=[0-9.]+ finish=length id=cmpl-[0-9a-f]+; max_tokens=9 n=1 .* stream=0\$"
[ "$c" = 9 ] || fail "completion: usage says $c tokens"
# 2. a streamed chat
curl -sN "$BASE/v1/chat/completions" -H "$JSON" -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}}' -o "$TMP/b.txt"
n=$((n + 1)); line=$(access_line $n)
p=$(usage prompt_tokens "$TMP/b.txt"); c=$(usage completion_tokens "$TMP/b.txt")
check_line "stream" "$line" "^folio: access: $PEER 'POST /v1/chat/completions' 200 prompt_tokens=$p output_tokens=$c $MS ttft_ms=[0-9.]+ finish=length id=chatcmpl-[0-9a-f]+; .* stream=1\$"
# 3. a 400 (max_tokens -1)
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "x", "max_tokens": -1}')
n=$((n + 1)); line=$(access_line $n)
check_line "400 (answered $code)" "$line" "^folio: access: $PEER 'POST /v1/completions' 400 prompt_tokens=0 output_tokens=0 $MS\$"
# 4. a stream cut off by its client: the tokens so far, finish=abort (16 x 480 tokens take
# seconds on this model; the client gives up after 0.5 s)
curl -sN -m 0.5 "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 480, "n": 16, "ignore_eos": true, "stream": true}' -o "$TMP/d.txt"
got=$(grep -c '^data: {' "$TMP/d.txt")
n=$((n + 1)); line=$(access_line $n)
check_line "aborted stream ($got chunks received)" "$line" "^folio: access: $PEER 'POST /v1/completions' 200 prompt_tokens=2 output_tokens=[0-9]+ $MS ttft_ms=[0-9.]+ finish=abort id=cmpl-"
out=$(echo "$line" | sed -E 's/.*output_tokens=([0-9]+).*/\1/')
[ "$out" -ge "$got" ] && [ "$out" -lt 7680 ] && echo "ok: aborted stream: $out tokens made, $got received" \
  || fail "aborted stream: output_tokens $out, $got chunks received"
ms=$(echo "$line" | sed -E 's/.* ms=([0-9.]+).*/\1/')
python3 -c "import sys; sys.exit(0 if 400 <= $ms < 5000 else 1)" && echo "ok: aborted stream lasted $ms ms (client gave up at 500)" || fail "aborted stream: ms=$ms"
# 5. a plain request whose client leaves before the answer: 499
curl -s -m 0.3 "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 480, "n": 16, "ignore_eos": true}' -o /dev/null
n=$((n + 1)); line=$(access_line $n)
check_line "client gone" "$line" "^folio: access: $PEER 'POST /v1/completions' 499 prompt_tokens=2 output_tokens=[0-9]+ $MS ttft_ms=[0-9.-]+ finish=abort id=cmpl-"
# 6. a request line with a quote and a newline: escaped, on one line
curl -s "$BASE/a'b%0aforged%22" -o /dev/null
n=$((n + 1)); line=$(access_line $n)
check_line "escaped" "$line" "^folio: access: $PEER 'GET /a\\\\x27b\\\\nforged\"' 404 prompt_tokens=0 output_tokens=0 $MS\$"
grep -q '^forged' "$LOG" && fail "a client forged a log line"
[ "$(grep -c '^folio: access: ' "$LOG")" = $n ] && echo "ok: one line per request ($n)" || fail "$(grep -c '^folio: access: ' "$LOG") access lines for $n requests"
stop_server

start_server "$LOG" --disable-log-requests || fail "server start (--disable-log-requests)"
curl -s "$BASE/v1/completions" -H "$JSON" -d '{"prompt": "Once", "max_tokens": 4}' -o /dev/null
curl -s "$BASE/nope" -o /dev/null
stop_server
grep -q 'access' "$LOG" && fail "--disable-log-requests: $(grep access "$LOG")" || echo "ok: --disable-log-requests writes no access line"
finish
