#!/usr/bin/env bash
# The whole test suite: builds (installing missing Debian packages), runs every test under
# ctest (GPU tests report "skipped" with their reason where there is no GPU), then builds the
# CPU code again with AddressSanitizer + UndefinedBehaviorSanitizer and runs the CPU tests
# there. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
# Tests run in parallel (one per core); OpenMP threads on top of that only contend.
export OMP_NUM_THREADS=1

bash launch/build.sh
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900

echo "== again under AddressSanitizer + UndefinedBehaviorSanitizer (CPU tests)" >&2
FOLIO_BUILD_DIR=build-asan bash launch/build.sh -DFOLIO_SANITIZE=ON -DFOLIO_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Debug
# fast_unwind_on_malloc=0: full stacks, so tests/lsan.supp can match Open MPI frames even in
# components it has already unloaded.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:fast_unwind_on_malloc=0
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Kept within CI's time: the 1,000-request stream runs in full above, a shorter one here (still
# far more than the KV pool holds); the two oracle comparisons (every corpus line through the
# tokenizer, every chat render) run above only: under the sanitizers their code is exercised by
# test_tokenizer and test_jinja. The soak test (label soak) runs its short version here too:
# 10 s of load, about 45 s in all.
export FOLIO_REQUESTS_N=250 FOLIO_REQUESTS_ALONE=12 FOLIO_SOAK_SECONDS=10
ctest --test-dir build-asan --output-on-failure -j"$jobs" -L "cpu|cli|soak" --timeout 1800 \
  -E "cli_tokenizer_oracle|cli_chat_render"
