#!/usr/bin/env bash
# Installs Folio's Debian dependencies (only those missing; needs root or sudo) and builds
# everything into build/ (or the directory in $FOLIO_BUILD_DIR). Extra arguments go to cmake,
# e.g. `launch/build.sh -DFOLIO_CUDA=OFF`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config git
          libopenmpi-dev openmpi-bin libhwloc-dev
          libjansson-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev
          libcmocka-dev curl
          slurmctld slurmd slurm-client munge  # tests/cluster: a real one-node Slurm
          prometheus                           # promtool: tests/cli/server_metrics.sh
          gnuplot-nox)                         # launch/bench_sweep.sh's plots

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (the tokenizer tests' oracle): any install will do, Debian's if none.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
# python3: test scripts that edit JSON fixtures.
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  echo "folio: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUILD_DIR=${FOLIO_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" 2>&1 | grep -Ev "^\[ *[0-9]+%\]|^gmake|^make" || true
test -x "$BUILD_DIR/folio" || { echo "folio: build failed (run cmake --build $BUILD_DIR for the full log)" >&2; exit 1; }
echo "folio: built $BUILD_DIR/folio" >&2
