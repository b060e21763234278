#!/usr/bin/env bash
# Build cnnkit._core with AddressSanitizer + UndefinedBehaviorSanitizer and run the tests under it.
#
#   scripts/sanitize.sh                 # the whole test suite (slow: ~10x slower than Release)
#   scripts/sanitize.sh tests/test_fuzz.py -k conv   # any pytest arguments
#   SANITIZE_FAST=1 scripts/sanitize.sh # the fast subset .ci/run uses
#
# The sanitized module is built in build/sanitize and copied, with the Python sources, into
# build/sanitize/pkg/cnnkit, so the dev build in python/cnnkit/ is left alone. Python itself is
# not instrumented, so libasan is LD_PRELOADed; leak detection is off (the interpreter leaks by
# design), ODR checking is strict (detect_odr_violation=2: a global defined twice is reported
# even when both copies have the same size), and any ASan or UBSan report fails the run
# (halt_on_error=1, exit code non-zero).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build/sanitize
PKG=$BUILD/pkg

# -O1 -g1: line numbers in reports, and a build twice as fast as -O2 -g (CI builds it too)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCNNKIT_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DCNNKIT_MODULE_DIR="$BUILD/module" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target _core

rm -rf "$PKG" && mkdir -p "$PKG"
cp -r python/cnnkit "$PKG/cnnkit"
find "$PKG/cnnkit" -name '_core*.so' -delete
cp "$BUILD"/module/_core*.so "$PKG/cnnkit/"

LIBASAN=$(g++ -print-file-name=libasan.so)
LIBUBSAN=$(g++ -print-file-name=libubsan.so)
export LD_PRELOAD="$LIBASAN $LIBUBSAN"
# allocator_may_return_null=1: a huge allocation returns NULL (numpy then raises MemoryError,
# as with glibc) instead of ASan reporting "requested allocation size exceeds maximum".
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:detect_odr_violation=2:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87
export PYTHONPATH=$PKG
export CNNKIT_FUZZ_SCALE=${CNNKIT_FUZZ_SCALE:-1}
# OpenMP worker threads stay alive between ops; fewer of them keeps ASan's shadow small.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

python3 -c "import cnnkit, sys; f = cnnkit._core.__file__; print('sanitized _core:', f); \
sys.exit(0 if f.startswith('$PKG') else 1)"

if [[ $# -gt 0 ]]; then
  ARGS=("$@")
elif [[ "${SANITIZE_FAST:-0}" == 1 ]]; then
  export CNNKIT_FUZZ_FACTOR=${CNNKIT_FUZZ_FACTOR:-1}
  # CI subset: the fuzz suite (every op, valid and invalid arguments) plus the threads and
  # large-allocation tests, Winograd (masked loads and stores at tile edges), the block cache
  # and the bf16 paths (panel edges, the padded planes of bf16_direct, AMX tile stores)
  ARGS=(tests/test_fuzz.py tests/test_reliability.py tests/test_winograd.py tests/test_memory.py
        tests/test_bf16.py)
else
  ARGS=(tests/)
fi
# -p no:cacheprovider: the sanitized run must not write the checkout's pytest cache
# --capture=sys: leave file descriptor 2 alone, so a sanitizer report reaches the terminal
python3 -m pytest -q -p no:cacheprovider --capture=sys -W ignore::DeprecationWarning "${ARGS[@]}"
echo "sanitize.sh: clean (no ASan/UBSan reports)"
