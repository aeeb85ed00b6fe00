#!/usr/bin/env bash
# `folio bench latency|throughput|serve --output-json FILE` on the CPU backend with
# stories260K: each file is valid JSON with vLLM's keys and Folio's, its figures agree with
# the printed table and with each other, the parameters are the ones given, a bad path fails
# before the model loads (or before a request is sent), a failed run leaves an older file as
# it was, and progress bars show on a terminal but never in a pipe.
set -uo pipefail
. "$(dirname "$0")/common.inc"
. "$(dirname "$0")/server.inc"   # OMP_NUM_THREADS=1, the served model, start_server
COMMIT=$("$FOLIO" --version | sed -nE 's/.*\(commit ([^)]+)\).*/\1/p')

# check_json NAME FILE TABLE MODE: the checks of one result in Python (TABLE: its stdout).
check_json() {
  python3 - "$@" <<'PY'
import json, math, re, sys
name, path, table_path, mode, commit = sys.argv[1:6]
table = open(table_path).read()
d = json.load(open(path))
bad = []
def need(cond, what):
    if not cond: bad.append(what)
def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)
def printed(pattern):  # a number from the table, and its decimals
    m = re.search(pattern, table)
    if not m:
        bad.append("table lacks /%s/" % pattern)
        return None, 0
    s = m.group(1)
    return float(s), len(s.split(".")[1]) if "." in s else 0
def agrees(key, value, pattern, scale=1.0):  # the JSON value rounds to the printed one
    p, dec = printed(pattern)
    if p is not None and value is not None:
        need(abs(round(value * scale, dec) - p) <= 10 ** -dec * 0.51,
             "%s %r vs printed %r" % (key, value * scale, p))
def percentile(v, p):  # numpy's default, written out
    v = sorted(v); r = p / 100 * (len(v) - 1); lo = int(math.floor(r))
    return v[-1] if lo >= len(v) - 1 else v[lo] + (r - lo) * (v[lo + 1] - v[lo])

for k in ("mode", "folio_version", "git_commit", "date", "timestamp", "gpu", "command"):
    need(k in d, "no key " + k)
need(d.get("mode") == mode, "mode %r" % d.get("mode"))
need(d.get("git_commit") == commit, "git_commit %r, folio --version says %r" % (d.get("git_commit"), commit))
need(re.fullmatch(r"\d{8}-\d{6}", d.get("date", "")), "date %r" % d.get("date"))
need(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d.get("timestamp", "")), "timestamp %r" % d.get("timestamp"))
need(d.get("command", "").startswith("folio bench " + mode + " "), "command %r" % d.get("command"))

if mode in ("latency", "throughput"):
    need(d.get("gpu") == "cpu", "gpu %r" % d.get("gpu"))
    need(d.get("device") == "cpu" and d.get("dtype") == "float32", "device/dtype")
    need(d.get("tensor_parallel_size") == 1, "tensor_parallel_size")
    c = d.get("ceilings", {})
    need(c.get("copy_gbs", 0) > 0 and c.get("gemm_tflops", 0) > 0, "ceilings %r" % c)
    need(isinstance(d.get("roofline"), dict), "no roofline")
if mode == "latency":
    lat = d["latencies"]
    need(d["batch_size"] == 3 and d["input_len"] == 12 and d["output_len"] == 10, "parameters")
    need(d["num_iters"] == 4 and d["num_iters_warmup"] == 1 and len(lat) == 4, "iterations")
    need(close(d["avg_latency"], sum(lat) / len(lat)), "avg_latency is not the mean of latencies")
    mean = sum(lat) / len(lat)
    need(close(d["std_latency"], math.sqrt(sum((x - mean) ** 2 for x in lat) / len(lat))), "std_latency")
    for p in (10, 25, 50, 75, 90, 99):
        need(close(d["percentiles"][str(p)], percentile(lat, p)), "percentile %d" % p)
    agrees("ttft_ms", d["ttft_ms"], r"time to first token +([0-9.]+) ms")
    agrees("tpot_ms", d["tpot_ms"], r"per output token +([0-9.]+) ms")
    agrees("output_throughput", d["output_throughput"], r"throughput +([0-9.]+) tokens/s")
    agrees("avg_latency", d["avg_latency"], r"whole batch +([0-9.]+) ms mean", 1e3)
    agrees("roofline.ttft_ms", d["roofline"]["ttft_ms"], r"first token .*roofline +([0-9.]+) ms")
    agrees("roofline.tpot_ms", d["roofline"]["tpot_ms"], r"output token .*roofline +([0-9.]+) ms")
    need(close(d["decode_throughput"], 3 * 1e3 / d["tpot_ms"]), "decode_throughput")
    need(close(d["roofline"]["tpot_fraction"], d["roofline"]["tpot_ms"] / d["tpot_ms"]), "tpot_fraction")
if mode == "throughput":
    need(d["num_requests"] == 12 and d["num_prompts"] == 12 and d["max_num_seqs"] == 4, "parameters")
    need(d["total_input_tokens"] == 12 * 8 and d["total_output_tokens"] == 12 * 6, "token totals")
    need(d["total_num_tokens"] == 12 * 14, "total_num_tokens %r" % d["total_num_tokens"])
    t = d["elapsed_time"]
    need(close(d["requests_per_second"], 12 / t) and close(d["tokens_per_second"], 12 * 14 / t), "rates")
    need(close(d["output_throughput"], 12 * 6 / t), "output_throughput")
    agrees("elapsed_time", t, r"([0-9.]+) s: ")
    agrees("requests_per_second", d["requests_per_second"], r"s: ([0-9.]+) requests/s")
    agrees("output_throughput", d["output_throughput"], r"requests/s, ([0-9.]+) output tokens/s")
    agrees("tokens_per_second", d["tokens_per_second"], r"output tokens/s, ([0-9.]+) total tokens/s")
    agrees("mean_tpot_ms", d["mean_tpot_ms"], r"decode step ([0-9.]+) ms mean")
    need(d["decode_steps"] > 0 and d["num_steps"] > d["decode_steps"], "steps")
    need(0 < d["peak_kv_blocks"] <= d["kv_blocks"], "peak_kv_blocks")
if mode == "serve":
    need(d.get("gpu") == "cpu-test", "gpu from --metadata: %r" % d.get("gpu"))
    need(d["completed"] == 10 and d["failed"] == 0 and d["num_prompts"] == 10, "counts")
    need(d["total_output_tokens"] == 10 * 6 and d["total_input_tokens"] == 10 * 5, "token totals")
    need(d["max_concurrency"] == 3 and d["request_rate"] == "inf" and d["model_id"] == "stories", "traffic")
    t = d["duration"]
    need(close(d["request_throughput"], 10 / t) and close(d["output_throughput"], 60 / t), "rates")
    need(close(d["total_token_throughput"], 110 / t), "total_token_throughput")
    agrees("duration", t, r"([0-9.]+) s: ")
    for metric, label in (("ttft", "time to first token"), ("tpot", "time per output token"),
                          ("itl", "inter-token latency"), ("e2el", "end-to-end latency")):
        for stat in ("mean", "median", "std", "p50", "p90", "p99"):
            need(isinstance(d.get("%s_%s_ms" % (stat, metric)), float), "no %s_%s_ms" % (stat, metric))
        need(d["median_%s_ms" % metric] == d["p50_%s_ms" % metric], metric + " median != p50")
        agrees("mean_%s_ms" % metric, d["mean_%s_ms" % metric], label + r" +mean +([0-9.]+) ms")
        for p in ("p50", "p90", "p99"):
            agrees("%s_%s_ms" % (p, metric), d["%s_%s_ms" % (p, metric)],
                   label + r" +mean.*" + p + r" +([0-9.]+)")
if bad:
    print("FAIL: %s: %s" % (name, "; ".join(bad)), file=sys.stderr)
    sys.exit(1)
print("ok: %s: %d keys, consistent with the table" % (name, len(d)))
PY
}

# run_bench NAME ARGS...: a bench run with stdout and stderr to files (a pipe, not a tty).
run_bench() {
  local name=$1; shift
  timeout 120 "$FOLIO" bench "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" ||
    { fail "$name: exit $?: $(cat "$TMP/$name.err")"; return 1; }
}

CPU=(--device cpu --model "$STORIES")
run_bench latency latency "${CPU[@]}" --batch-size 3 --input-len 12 --output-len 10 \
  --num-iters 4 --num-warmup 1 --output-json "$TMP/latency.json" &&
  { check_json latency "$TMP/latency.json" "$TMP/latency.out" latency "$COMMIT" || failures=$((failures + 1)); }
run_bench throughput throughput "${CPU[@]}" --num-prompts 12 --input-len 8 --output-len 6 \
  --max-num-seqs 4 --output-json "$TMP/throughput.json" &&
  { check_json throughput "$TMP/throughput.json" "$TMP/throughput.out" throughput "$COMMIT" || failures=$((failures + 1)); }

# No progress bar in a pipe (carriage returns or a bar's "[###"), one on a terminal.
if grep -q $'\r' "$TMP/throughput.err" || grep -q 'requests \[' "$TMP/throughput.err"; then
  fail "progress bar in a pipe: $(tr '\r' '\n' <"$TMP/throughput.err" | head -5)"
else
  echo "ok: no progress bar in a pipe"
fi
if command -v script >/dev/null; then
  script -qec "$FOLIO bench throughput --device cpu --model $STORIES --num-prompts 6 --input-len 4 --output-len 4 --max-num-seqs 2" \
    /dev/null >"$TMP/tty.out" 2>&1 </dev/null
  grep -q 'requests \[' "$TMP/tty.out" && echo "ok: a progress bar on a terminal" ||
    fail "no progress bar on a terminal: $(tr '\r' '\n' <"$TMP/tty.out" | head -5)"
fi

# A bad path fails before the model loads (nothing about loading on stderr).
for mode in latency throughput; do
  expect_error "$mode: --output-json in a missing folder" "--output-json $TMP/no/such/dir/r.json: cannot create" \
    -- bench $mode "${CPU[@]}" --output-json "$TMP/no/such/dir/r.json"
  grep -q "loaded" "$TMP/err" && fail "$mode: the model loaded before the bad path was refused"
done
expect_error "latency: --output-json names a folder" "--output-json $TMP: is a directory" \
  -- bench latency "${CPU[@]}" --output-json "$TMP"

# A failed run leaves an older file whole, and no temporary file beside it.
echo '{"old": true}' >"$TMP/keep.json"
expect_error "a run that fails" "exceeds the model's context" \
  -- bench latency "${CPU[@]}" --input-len 500 --output-len 100 --output-json "$TMP/keep.json"
[ "$(cat "$TMP/keep.json")" = '{"old": true}' ] && echo "ok: the older file is untouched" ||
  fail "a failed run changed $TMP/keep.json: $(head -c 200 "$TMP/keep.json")"
ls "$TMP" | grep -q '\.tmp\.' && fail "temporary files left: $(ls "$TMP" | grep '\.tmp\.')" ||
  echo "ok: no temporary file left"

# bench serve against a live server.
start_server "$TMP/server.log" --num-kv-blocks 64 || { fail "server did not start"; finish; }
expect_error "serve: --output-json in a missing folder" "--output-json $TMP/no/r.json: cannot create" \
  -- bench serve --url "$BASE" --num-prompts 2 --output-json "$TMP/no/r.json"
run_bench serve serve --url "$BASE" --served-model-name stories --num-prompts 10 --concurrency 3 \
  --input-len 5 --output-len 6 --metadata gpu=cpu-test --output-json "$TMP/serve.json" &&
  { check_json serve "$TMP/serve.json" "$TMP/serve.out" serve "$COMMIT" || failures=$((failures + 1)); }
stop_server
finish
