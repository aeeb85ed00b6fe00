#!/usr/bin/env bash
# Run HERE (the build machine): builds with CUDA into build-cuda/ and copies what the GPU
# machine needs into .carry/gpu/ (the folio binary, every GPU test, the shared libraries that
# machine lacks). Then send it with the device tool:
#   run(command="bash tests/gpu/run_gpu_checks.sh .carry/gpu", carry=[".carry"])
set -euo pipefail
cd "$(dirname "$0")/../.."
FOLIO_BUILD_DIR=build-cuda bash launch/build.sh -DFOLIO_CUDA=ON -DCMAKE_BUILD_TYPE=Release
rm -rf .carry/gpu && mkdir -p .carry/gpu/lib
cp build-cuda/folio .carry/gpu/
find build-cuda/tests -maxdepth 1 -type f -name 'test_gpu_*' -perm -u+x -exec cp {} .carry/gpu/ \;
# (test_gpu_nccl runs under mpirun: tests/gpu/run_nccl_checks.sh)
# Libraries the GPU machine does not have (it has MPI, NCCL, cuBLAS, jansson, pcre2, hwloc, gomp).
for lib in libcmocka.so.0 libutf8proc.so.2 libmicrohttpd.so.12; do
  f=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
  [ -n "$f" ] && cp -L "$f" .carry/gpu/lib/
done
[ -d ../shared/models/stories260K ] && cp -r ../shared/models/stories260K .carry/gpu/
du -sh .carry/gpu
