#!/usr/bin/env bash
# launch/bench_sweep.sh on the CPU backend with stories260K: a latency sweep over 3 batch sizes
# writes 3 JSON results (each with its batch size), a table of 3 points with their rooflines,
# and a plot as SVG (an <svg> root naming every point) and PNG (the PNG signature); a
# throughput sweep over --max-num-seqs does the same in two halves (--no-plot, then
# --plot-only); bad arguments fail before any run.
set -uo pipefail
. "$(dirname "$0")/common.inc"
[ -d "$STORIES" ] || { echo "SKIPPED: $STORIES not found"; exit 77; }
command -v gnuplot >/dev/null || { echo "SKIPPED: no gnuplot (Debian gnuplot-nox; launch/build.sh installs it)"; exit 77; }
export OMP_NUM_THREADS=1
SWEEP=$SRC/launch/bench_sweep.sh

# check_sweep NAME DIR MODE OVER LABEL KEY V...: the files of one sweep.
check_sweep() {
  python3 - "$@" <<'PY'
import json, os, sys
import xml.etree.ElementTree as ET
name, out, mode, over, label, key, values = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7:]
bad = []
files = sorted(f for f in os.listdir(out) if f.endswith(".json"))
want = sorted("%s-%s-%s.json" % (mode, over, v) for v in values)
if files != want: bad.append("JSON files %s, expected %s" % (files, want))
for v in values:
    f = os.path.join(out, "%s-%s-%s.json" % (mode, over, v))
    if not os.path.exists(f): continue
    d = json.load(open(f))
    if d.get(key) != int(v) or d.get("mode") != mode: bad.append("%s: %s=%r mode=%r" % (f, key, d.get(key), d.get("mode")))
rows = [l.split() for l in open(os.path.join(out, "sweep.dat")) if not l.startswith("#")]
if [r[0] for r in rows] != [label + v for v in values]: bad.append("sweep.dat rows %s" % [r[0] for r in rows])
for r in rows:
    if len(r) != 5 or any(x == "NaN" or float(x) <= 0 for x in r[1:]): bad.append("sweep.dat row %s" % r)
png = open(os.path.join(out, "sweep.png"), "rb").read()
if not png.startswith(b"\x89PNG\r\n\x1a\n") or len(png) < 1000: bad.append("sweep.png is not a PNG (%d bytes)" % len(png))
svg = os.path.join(out, "sweep.svg")
try:
    root = ET.parse(svg).getroot()
    if root.tag.split("}")[-1] != "svg": bad.append("SVG root is %s" % root.tag)
    text = " ".join(t for t in root.itertext())
    for v in values:
        if label + v not in text: bad.append("SVG lacks the label %s%s" % (label, v))
    if "roofline" not in text: bad.append("SVG lacks the roofline's key entry")
except ET.ParseError as e:
    bad.append("sweep.svg does not parse: %s" % e)
if bad:
    print("FAIL: %s: %s" % (name, "; ".join(bad)), file=sys.stderr); sys.exit(1)
print("ok: %s: %d results, sweep.dat, sweep.svg, sweep.png" % (name, len(values)))
PY
}

CPU=(--device cpu --model "$STORIES")
if bash "$SWEEP" latency --values 1,2,4 --out "$TMP/lat" --folio "$FOLIO" -- "${CPU[@]}" \
     --input-len 8 --output-len 8 --num-iters 2 --num-warmup 1 >"$TMP/lat.log" 2>&1; then
  check_sweep latency "$TMP/lat" latency batch-size B= batch_size 1 2 4 || failures=$((failures + 1))
else
  fail "latency sweep: $(tail -5 "$TMP/lat.log")"
fi
# The throughput sweep in two halves: the runs alone (--no-plot: what a GPU machine without
# gnuplot runs), then the plot alone from their files (--plot-only).
if bash "$SWEEP" throughput --values 2,4 --out "$TMP/thr" --folio "$FOLIO" --no-plot -- "${CPU[@]}" \
     --num-prompts 8 --input-len 6 --output-len 6 >"$TMP/thr.log" 2>&1 &&
   { [ ! -e "$TMP/thr/sweep.svg" ] || fail "--no-plot drew a plot"; } &&
   bash "$SWEEP" throughput --plot-only --out "$TMP/thr" >>"$TMP/thr.log" 2>&1; then
  check_sweep throughput "$TMP/thr" throughput max-num-seqs seqs= max_num_seqs 2 4 || failures=$((failures + 1))
else
  fail "throughput sweep: $(tail -5 "$TMP/thr.log")"
fi

# Bad arguments: exit 2 with the reason, before any run (no result file).
expect_sweep_error() {
  local name=$1 want=$2; shift 2
  local rc=0
  bash "$SWEEP" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  if [ "$rc" = 2 ] && grep -qF -- "$want" "$TMP/err" && ! ls "$TMP/bad"/*.json >/dev/null 2>&1; then
    echo "ok: $name -> $(cat "$TMP/err")"
  else
    fail "$name: exit $rc, $(cat "$TMP/err")"
  fi
}
expect_sweep_error "a value that is not a number" "'x' is not a positive number" \
  latency --values 1,x --out "$TMP/bad" --folio "$FOLIO" -- "${CPU[@]}"
expect_sweep_error "the swept option given again" "the sweep sets --batch-size" \
  latency --values 1 --out "$TMP/bad" --folio "$FOLIO" -- "${CPU[@]}" --batch-size 2
expect_sweep_error "an option latency does not sweep" "latency sweeps over batch-size" \
  latency --over concurrency --values 1 --out "$TMP/bad" --folio "$FOLIO" -- "${CPU[@]}"
expect_sweep_error "no folio binary" "no folio binary at $TMP/none" \
  latency --values 1 --out "$TMP/bad" --folio "$TMP/none" -- "${CPU[@]}"
finish
