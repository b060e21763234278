#!/usr/bin/env bash
# cnnkit on 64-bit ARM, checked under user-mode emulation (issue 18): cross-builds the core and
# the _core extension for aarch64 with Debian's cross toolchain, puts them in a Debian arm64
# root file system (debootstrap; its Python 3.11, numpy and pytest) and runs there, emulated by
# qemu-user through binfmt_misc:
#   - the op-level test files (float64 references; torch parity tests skip: no arm64 torch)
#     with the default kernels (neon; the tests with the `isa` fixture run on ref and neon),
#     then again with CNNKIT_ISA=ref (AARCH64_ISAS="neon" skips that second pass),
#   - `cnnkit train` on the bundled digits (needs scikit-learn in the root: installed there).
# Correctness only: emulated time says nothing about an ARM CPU's speed.
#
#   scripts/aarch64-check.sh              # everything (first run: ~5 min of setup, cached)
#   AARCH64_TESTS="tests/test_pool.py" scripts/aarch64-check.sh
#
# Needs root (apt-get, debootstrap, chroot, binfmt_misc). The root file system is kept in
# build/aarch64/root (AARCH64_ROOT) and reused; the build in build/aarch64/build
# (AARCH64_BUILD: two checks at once need two build folders).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=${AARCH64_ROOT:-$REPO/build/aarch64/root}
BUILD=${AARCH64_BUILD:-$REPO/build/aarch64/build}
CHECK=/cnnkit-check-$(basename "$BUILD")  # the package and tests inside the root
ISAS=${AARCH64_ISAS:-"neon ref"}
TESTS=${AARCH64_TESTS:-"tests/test_pool.py tests/test_activation.py tests/test_conv.py \
tests/test_norm.py tests/test_group_layer_norm.py tests/test_gemm.py tests/test_linear.py \
tests/test_loss.py tests/test_dropout.py tests/test_winograd.py tests/test_conv_algorithms.py \
tests/test_augment_core.py tests/test_tensor.py tests/test_autograd.py tests/test_int8_gemm.py \
tests/test_int8_rows.py"}
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo")
t0=$(date +%s)
# Exit status 3: this machine cannot emulate aarch64 (no root, no binfmt_misc): nothing was
# checked, said on stderr. Any other failure (build, tests, training) exits 1.
cannot() { echo "aarch64 check NOT RUN: $*" >&2; exit 3; }
if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then cannot "needs root or passwordless sudo"; fi
[ "$(uname -m)" = x86_64 ] || cannot "written for an x86-64 host (this is $(uname -m))"

# 1. the host's tools: cross compiler, qemu-user, debootstrap
need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# 2. aarch64 binaries run through qemu (binfmt_misc; the F flag: no qemu inside the root)
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
  $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc ||
    cannot "cannot mount binfmt_misc (a container without the privilege?)"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  $SUDO sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register' ||
    cannot "cannot register qemu-aarch64 with binfmt_misc"
fi

# 3. the arm64 root file system (Debian bookworm: Python 3.11, numpy, pytest, scikit-learn)
if [ ! -x "$ROOT/usr/bin/python3" ] || ! $SUDO chroot "$ROOT" python3 -c "import sklearn, tqdm" \
    2>/dev/null; then
  mkdir -p "$(dirname "$ROOT")"
  $SUDO debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-numpy,python3-pytest,python3-hypothesis,libpython3.11-dev,python3-sklearn,python3-tqdm,python3-pip,ca-certificates \
    bookworm "$ROOT" http://deb.debian.org/debian
fi
# safetensors (the checkpoints' format) is not in Debian 12: its aarch64 wheel, fetched by the
# host's pip (which knows this machine's package index and certificates), installed in the root
if ! $SUDO chroot "$ROOT" python3 -c "import safetensors" 2>/dev/null; then
  if ! $SUDO chroot "$ROOT" python3 -m pip --version >/dev/null 2>&1; then
    $SUDO chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends python3-pip >/dev/null
  fi
  $SUDO rm -rf "$ROOT/wheels" && $SUDO mkdir -p "$ROOT/wheels"
  python3 -m pip download -q --only-binary=:all: --no-deps --platform manylinux2014_aarch64 \
    --python-version 3.11 -d "$ROOT/wheels" "safetensors>=0.4"
  $SUDO chroot "$ROOT" sh -c 'python3 -m pip install -q --no-index --break-system-packages /wheels/*.whl'
fi
echo "aarch64 root ready ($(( $(date +%s) - t0 )) s)"

# 4. cross-build: the core with CMake (no x86 kernel folders on aarch64), the bindings against
# the root's Python headers
mkdir -p "$BUILD"
cat > "$BUILD/toolchain.cmake" <<'EOF'
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
EOF
cmake -S . -B "$BUILD/core" -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE="$BUILD/toolchain.cmake" \
  -DPython_EXECUTABLE=/nonexistent >/dev/null
cmake --build "$BUILD/core" --target cnnkit_core -j"$(nproc)"
python3 -c "import pybind11" 2>/dev/null || python3 -m pip install -q pybind11
PYBIND11_INCLUDE=$(python3 -c "import pybind11; print(pybind11.get_include())")
mkdir -p "$BUILD/pyinc/aarch64-linux-gnu"
ln -sfn "$ROOT/usr/include/aarch64-linux-gnu/python3.11" "$BUILD/pyinc/aarch64-linux-gnu/python3.11"
mkdir -p "$BUILD/bindings"
ls cpp/bindings/*.cpp | xargs -P "$(nproc)" -I{} sh -c \
  'aarch64-linux-gnu-g++ -O3 -DNDEBUG -ffp-contract=off -fPIC -fvisibility=hidden -std=c++17 -Icpp/include -Icpp/src \
   -Icpp/bindings -I"$0" -I"$1/usr/include/python3.11" -I"$2/pyinc" -c {} \
   -o "$2/bindings/$(basename {} .cpp).o"' "$PYBIND11_INCLUDE" "$ROOT" "$BUILD"
aarch64-linux-gnu-g++ -shared "$BUILD"/bindings/*.o "$BUILD/core/libcnnkit_core.a" -lpthread \
  -o "$BUILD/_core.cpython-311-aarch64-linux-gnu.so"
echo "cross-built ($(( $(date +%s) - t0 )) s)"

# 5. the package and the tests in the root, then run them there
$SUDO rm -rf "$ROOT$CHECK"
$SUDO mkdir -p "$ROOT$CHECK"
$SUDO cp -r python/cnnkit tests pyproject.toml "$ROOT$CHECK/"
$SUDO rm -f "$ROOT$CHECK"/cnnkit/_core.*.so
$SUDO cp "$BUILD/_core.cpython-311-aarch64-linux-gnu.so" "$ROOT$CHECK/cnnkit/"
run() { $SUDO chroot "$ROOT" /bin/sh -c "cd $CHECK && PYTHONPATH=$CHECK $*"; }
run "python3 -c 'import cnnkit, platform; i = cnnkit.cpu_info(); print(\"cnnkit on\", platform.machine(), i[\"isa\"], i[\"supported_isas\"], {k: v for k, v in i[\"features\"].items() if v})'"
status=0
for isa in $ISAS; do
  echo "== op tests, CNNKIT_ISA=$isa: $TESTS"
  t1=$(date +%s)
  run CNNKIT_ISA=$isa python3 -m pytest -q -p no:cacheprovider $TESTS || status=1
  echo "(CNNKIT_ISA=$isa: $(( $(date +%s) - t1 )) s)"
done
echo "== cnnkit train (digits, the README's main job)"
run python3 -m cnnkit train --quiet --out /tmp/aarch64-run-$(basename "$BUILD") --overwrite | tail -4 || status=1
echo "aarch64 check: $([ $status = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - t0 )) s"
exit $status
