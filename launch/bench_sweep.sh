#!/usr/bin/env bash
# A sweep of folio bench: one run per value of one option, one JSON result per run, and a plot
# of throughput against per-token latency (points labelled with the value, the bench's
# roofline as a dashed line) as SVG and PNG through gnuplot.
#   launch/bench_sweep.sh latency    --values 1,8,32,128 --out DIR -- --model M --load-format dummy
#   launch/bench_sweep.sh throughput --values 16,64,256 --out DIR -- --model M --num-prompts 500
#   launch/bench_sweep.sh serve      --values 1,8,64 --out DIR -- --url http://127.0.0.1:8000
# Options:
#   --values V1,V2,...   the values, in order
#   --over OPTION        the folio bench option they set: batch-size (latency's default),
#                        max-num-seqs (throughput's), concurrency (serve's) or request-rate
#   --out DIR            where MODE-OPTION-VALUE.json, sweep.dat, sweep.svg, sweep.png go
#   --folio PATH         the folio binary (default: $FOLIO, else build/folio beside launch/)
#   --launch "CMD"       a launcher before it, e.g. "launch/folio-mpirun -np 2"
#   --title TEXT         the plot's title (default: mode, device, model, date, commit)
#   --no-plot            only the runs (a GPU machine without gnuplot or python3)
#   --plot-only          only the plot, from the MODE-OPTION-*.json already in --out
# Everything after -- goes to every `folio bench MODE` run. Axes (docs/benchmarks.md):
#   latency:    x tpot_ms (median ms per output token), y decode_throughput (batch / that);
#               roofline: roofline.tpot_ms, roofline.decode_throughput of each batch size
#   throughput: x mean_tpot_ms (mean decode step), y output_throughput (output tokens/s of
#               the run); roofline: roofline.tpot_ms, roofline.output_throughput
#   serve:      x mean_tpot_ms, y output_throughput (no roofline: the client knows no device)
set -euo pipefail

die() { echo "bench_sweep: error: $*" >&2; exit 2; }
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
case $1 in -h|--help) usage ;; esac
MODE=$1; shift
case $MODE in
  latency) OVER=batch-size ;;
  throughput) OVER=max-num-seqs ;;
  serve) OVER=concurrency ;;
  *) die "the mode is latency, throughput or serve, not '$MODE'" ;;
esac
VALUES= OUT= TITLE= LAUNCH= RUN=1 PLOT=1
FOLIO_BIN=${FOLIO:-$(cd "$(dirname "$0")/.." && pwd)/build/folio}
while [ $# -gt 0 ]; do
  case $1 in
    --values) [ $# -ge 2 ] || die "--values needs a list"; VALUES=$2; shift 2 ;;
    --over) [ $# -ge 2 ] || die "--over needs an option name"; OVER=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT=$2; shift 2 ;;
    --folio) [ $# -ge 2 ] || die "--folio needs a path"; FOLIO_BIN=$2; shift 2 ;;
    --launch) [ $# -ge 2 ] || die "--launch needs a command"; LAUNCH=$2; shift 2 ;;
    --title) [ $# -ge 2 ] || die "--title needs a text"; TITLE=$2; shift 2 ;;
    --no-plot) PLOT=0; shift ;;
    --plot-only) RUN=0; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) die "unknown option '$1' (folio bench options go after --)" ;;
  esac
done
ARGS=("$@")

# Everything is checked before the first run: a sweep can take a long time.
[ -n "$OUT" ] || die "--out DIR is required"
[ $RUN = 1 ] || [ $PLOT = 1 ] || die "--no-plot and --plot-only: nothing to do"
if [ $RUN = 0 ] && [ -z "$VALUES" ]; then  # --plot-only: the values of the files there, in order
  VALUES=$(cd "$OUT" 2>/dev/null && ls -- "$MODE-$OVER-"*.json 2>/dev/null |
           sed -E "s/^$MODE-$OVER-(.*)\.json\$/\1/" | sort -g | paste -sd, -) || true
  [ -n "$VALUES" ] || die "--plot-only: no $MODE-$OVER-*.json in $OUT"
fi
[ -n "$VALUES" ] || die "--values V1,V2,... is required"
case $MODE:$OVER in
  latency:batch-size|throughput:max-num-seqs|serve:concurrency|serve:request-rate) ;;
  *) die "--over $OVER: $MODE sweeps over $(case $MODE in latency) echo batch-size ;;
       throughput) echo max-num-seqs ;; serve) echo "concurrency or request-rate" ;; esac)" ;;
esac
IFS=, read -r -a POINTS <<<"$VALUES"
[ ${#POINTS[@]} -ge 1 ] || die "--values '$VALUES' has no value"
for v in "${POINTS[@]}"; do
  [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] && [[ ! $v =~ ^0+(\.0+)?$ ]] ||
    die "--values: '$v' is not a positive number"
  [ "$OVER" = request-rate ] || [[ $v =~ ^[0-9]+$ ]] || die "--values: --$OVER takes integers, not '$v'"
done
for a in "${ARGS[@]}"; do
  case $a in --$OVER|--$OVER=*|--output-json|--output-json=*)
    die "'$a' after --: the sweep sets --$OVER and --output-json itself" ;;
  esac
done
[ $RUN = 0 ] || [ -x "$FOLIO_BIN" ] || die "no folio binary at $FOLIO_BIN (build it, or give --folio PATH)"
if [ $PLOT = 1 ]; then
  command -v gnuplot >/dev/null ||
    die "gnuplot is not installed (Debian: gnuplot-nox; launch/build.sh installs it), or use --no-plot"
  command -v python3 >/dev/null || die "python3 is not installed (it reads the JSON results), or use --no-plot"
fi
mkdir -p "$OUT" 2>/dev/null || die "--out $OUT: cannot create the directory"
[ -w "$OUT" ] || die "--out $OUT: not writable"

# ---- the runs ----
FILES=()
for v in "${POINTS[@]}"; do
  f=$OUT/$MODE-$OVER-$v.json
  FILES+=("$f")
  if [ $RUN = 0 ]; then [ -f "$f" ] || die "--plot-only: $f is missing"; continue; fi
  echo "bench_sweep: $MODE --$OVER $v -> $f" >&2
  # shellcheck disable=SC2086  # --launch is a command line, split on purpose
  $LAUNCH "$FOLIO_BIN" bench "$MODE" "${ARGS[@]}" "--$OVER" "$v" --output-json "$f" ||
    die "folio bench $MODE --$OVER $v failed (results so far in $OUT)"
done
if [ $PLOT = 0 ]; then
  echo "bench_sweep: ${#FILES[@]} results in $OUT (plot them with --plot-only)" >&2
  exit 0
fi

# ---- the table the plot reads: value, x, y, roofline x, roofline y (NaN: none) ----
python3 - "$MODE" "$OVER" "$OUT/sweep.dat" "$OUT/sweep.gp.inc" "$TITLE" "${FILES[@]}" <<'PY'
import json, math, sys
mode, over, dat, inc, title, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
AXES = {  # x, y, roofline x, roofline y (keys in each result; a.b: b inside a)
    "latency": ("tpot_ms", "decode_throughput", "roofline.tpot_ms", "roofline.decode_throughput"),
    "throughput": ("mean_tpot_ms", "output_throughput", "roofline.tpot_ms", "roofline.output_throughput"),
    "serve": ("mean_tpot_ms", "output_throughput", None, None),
}[mode]
LABEL = {"batch-size": "B=", "max-num-seqs": "seqs=", "concurrency": "c=", "request-rate": "rate="}[over]

def get(d, key):
    if key is None:
        return float("nan")
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return float(d) if isinstance(d, (int, float)) else float("nan")

rows, first = [], None
for f in files:
    d = json.load(open(f))
    first = first or d
    value = f.rsplit("-", 1)[1][: -len(".json")]
    rows.append((value, get(d, AXES[0]), get(d, AXES[1]), get(d, AXES[2]), get(d, AXES[3])))
with open(dat, "w") as out:
    out.write("# %s sweep over --%s: value %s %s %s %s\n" % ((mode, over) + tuple(str(a) for a in AXES)))
    for value, *nums in rows:
        out.write("%s%s %s\n" % (LABEL, value, " ".join("NaN" if math.isnan(x) else "%.6g" % x for x in nums)))
        print("  --%s %-8s %s %.4g  %s %.4g" % (over, value, AXES[0], nums[0], AXES[1], nums[1]))
if not title:
    gpu = first.get("gpu") or "device not recorded"
    title = "folio bench %s: %s, %s, %s, %s (%s)" % (
        mode, first.get("model") or first.get("model_id") or first.get("base_url", ""), gpu,
        first.get("dtype", "served"), first.get("date", ""), first.get("git_commit", ""))
xl = {"latency": "time per output token, ms (median decode step)",
      "throughput": "time per output token, ms (mean decode step)",
      "serve": "time per output token, ms (mean TPOT)"}[mode]
yl = {"latency": "output tokens/s (batch / decode step)",
      "throughput": "output tokens/s (whole run)", "serve": "output tokens/s"}[mode]
esc = lambda s: s.replace("\\", "\\\\").replace('"', '\\"')
has_roof = any(not math.isnan(r[3]) and not math.isnan(r[4]) for r in rows)
with open(inc, "w") as out:
    out.write('set title "%s" noenhanced\nset xlabel "%s"\nset ylabel "%s"\n' % (esc(title), xl, yl))
    out.write("roofline = %d\n" % has_roof)
PY

# ---- the plot ----
PNG_TERM=png
gnuplot -e 'set terminal pngcairo' 2>/dev/null && PNG_TERM=pngcairo
for fmt in svg png; do
  if [ $fmt = svg ]; then term="svg size 900,600 dynamic background rgb 'white' font 'sans,12'"
  else term="$PNG_TERM size 900,600 background rgb 'white'"; fi
  gnuplot <<GP || die "gnuplot failed to draw $OUT/sweep.$fmt"
set terminal $term
set output "$OUT/sweep.$fmt"
load "$OUT/sweep.gp.inc"
set grid
set key top left
set logscale y
set xrange [0:*]
set offsets 0, graph 0.08, graph 0.1, 0
if (roofline) {
  plot "$OUT/sweep.dat" using 4:5 with lines dashtype 2 linewidth 2 linecolor rgb '#888888' title "roofline (measured ceilings)", \
       "" using 2:3 with linespoints pointtype 7 linewidth 2 linecolor rgb '#1f77b4' title "measured", \
       "" using 2:3:1 with labels offset char 1.2,0.8 left notitle
} else {
  plot "$OUT/sweep.dat" using 2:3 with linespoints pointtype 7 linewidth 2 linecolor rgb '#1f77b4' title "measured", \
       "" using 2:3:1 with labels offset char 1.2,0.8 left notitle
}
GP
done
rm -f "$OUT/sweep.gp.inc"
echo "bench_sweep: ${#FILES[@]} results, $OUT/sweep.dat, $OUT/sweep.svg, $OUT/sweep.png" >&2
