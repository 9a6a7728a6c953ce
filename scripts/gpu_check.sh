#!/usr/bin/env bash
# Builds and runs the CUDA backend's checks on a GPU machine, then its benchmark:
#   scripts/gpu_check.sh [--no-bench] [--sanitize] [--build-only]
# Logs and the benchmark JSON (at most 8 files: the device tool returns no more) go under $OUT (default: build-gpu/out); a short summary
# is printed last. Builds only what the GPU checks need (brisk_cuda, the two test programs, the
# benchmark) with its own build folder, build-gpu. SRC=DIR builds another source tree (a base
# revision for bench/cuda_ab.sh) in DIR/build-gpu; TARGETS="a b" replaces the target list.
#
# Machines without the project's Debian dev packages (the lent GPU machines have none): put the
# .deb files in .debs/ (see below) and they are unpacked into a private sysroot that CMake is
# pointed at; nothing is installed system-wide. Fetch them once, on a Debian 12 machine:
#   mkdir -p .debs && cd .debs && apt-get download libgtest-dev nlohmann-json3-dev libpcre2-dev \
#     libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libsentencepiece-dev \
#     libsentencepiece0 libcli11-dev pkgconf pkgconf-bin libpkgconf3 pkg-config libprotobuf-lite32 \
#     libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 zlib1g-dev libutf8proc-dev libutf8proc2
# plus the Boost headers the server includes, as a tarball (libboost1.74-dev is 9.5 MB, too much
# for the 64 MiB carry; only the headers http_server.cc pulls in are packed):
#   g++ -std=c++20 -M -Isrc $(pkg-config --cflags spdlog) src/serve/http_server.cc | tr ' \\' '\n\n' |
#     grep '^/usr/include/boost/' | sort -u >list && echo /usr/include/boost/version.hpp >>list &&
#     tar czf .debs/boost-headers-1.74.tar.gz -P --transform 's|^/||' -T list
# (The GPU targets link none of PCRE2/SentencePiece/Boost/spdlog; the top-level CMakeLists only
# requires that they can be found.)
set -uo pipefail

ROOT=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
DEBS=$(cd "$(dirname "$0")/.." && pwd)/.debs
BUILD="$ROOT/build-gpu"
OUT=${OUT:-$BUILD/out}
BENCH=1
BUILD_ONLY=0
SANITIZE=0
for arg in "$@"; do
  case "$arg" in
    --no-bench) BENCH=0 ;;
    --build-only) BUILD_ONLY=1; BENCH=0 ;;
    --sanitize) SANITIZE=1 ;;
    *) echo "usage: $0 [--no-bench] [--sanitize] [--build-only]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }

say "== machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  uname -r; g++ --version 2>&1 | head -1; cmake --version 2>&1 | head -1; ninja --version 2>&1
  command -v nvcc || ls /usr/local/cuda/bin/nvcc; } 2>&1 | tee -a "$LOG"

NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
CMAKE_ARGS=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER="$NVCC")

# Dev packages from .debs/ when present: a private sysroot, found through explicit package dirs.
if compgen -G "$DEBS/*.deb" >/dev/null; then
  SYSROOT=${SYSROOT:-/tmp/brisk-sysroot}  # SYSROOT=DIR when two builds run at once
  rm -rf "$SYSROOT" && mkdir -p "$SYSROOT"
  for deb in "$DEBS"/*.deb; do dpkg -x "$deb" "$SYSROOT"; done
  for headers in "$DEBS"/*.tar.gz; do [ -e "$headers" ] && tar xzf "$headers" -C "$SYSROOT"; done
  LIBDIR="$SYSROOT/usr/lib/x86_64-linux-gnu"
  # pkgconf from the sysroot needs its library; a wrapper keeps LD_LIBRARY_PATH away from the rest.
  cat >"$SYSROOT/pkg-config" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$LIBDIR" exec "$SYSROOT/usr/bin/pkgconf" "\$@"
EOF
  chmod +x "$SYSROOT/pkg-config"
  export PKG_CONFIG_LIBDIR="$LIBDIR/pkgconfig:$SYSROOT/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$SYSROOT"
  CMAKE_ARGS+=(-DCMAKE_PREFIX_PATH="$SYSROOT/usr"
               -DPKG_CONFIG_EXECUTABLE="$SYSROOT/pkg-config"
               -DGTest_DIR="$LIBDIR/cmake/GTest"
               -Dnlohmann_json_DIR="$SYSROOT/usr/share/cmake/nlohmann_json"
               -DCLI11_DIR="$SYSROOT/usr/share/cmake/CLI11"
               -DBoost_NO_BOOST_CMAKE=ON -DBoost_INCLUDE_DIR="$SYSROOT/usr/include")
  say "== dev packages from .debs/ unpacked into $SYSROOT"
fi

say "== configure + build"
START=$(date +%s)
if ! cmake -S "$ROOT" -B "$BUILD" "${CMAKE_ARGS[@]}" >"$OUT/configure.log" 2>&1; then
  tail -40 "$OUT/configure.log"
  echo "SUMMARY: configure FAILED (see $OUT/configure.log)"
  exit 1
fi
read -r -a TARGETS <<<"${TARGETS:-brisk_cuda cuda_ops_test cuda_quant_ops_test cuda_model_test cuda_runtime_test cuda_quant_model_test}"
[ "$BENCH" = 1 ] && TARGETS+=(cuda_op_bench)
if ! ninja -C "$BUILD" -j"${JOBS:-16}" "${TARGETS[@]}" >"$OUT/build.log" 2>&1; then
  grep -E "error|FAILED" "$OUT/build.log" | head -40
  echo "SUMMARY: build FAILED (see $OUT/build.log)"
  exit 1
fi
say "build: $(( $(date +%s) - START )) s"
[ "$BUILD_ONLY" = 1 ] && exit 0

status=0
run_test() {  # name, then gtest arguments
  local name=$1; shift
  timeout 600 "$BUILD/tests/$name" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  [ $rc -ne 0 ] && status=1
  say "$name: exit $rc, $(grep -c '^\[       OK \]' "$OUT/$name.log") ok, $(grep -c '^\[  FAILED  \]' "$OUT/$name.log") failed lines, $(grep -c '^\[  SKIPPED \]' "$OUT/$name.log") skipped lines"
  grep -E "Failure|error:|Expected|Which is|CHECK failed|out of range" "$OUT/$name.log" | head -20 | tee -a "$LOG"
}
say "== tests"
run_test cuda_ops_test
run_test cuda_quant_ops_test
run_test cuda_model_test
# The runtime test needs sotu-llama: carried models (.carry/models) on the GPU machine.
export BRISK_MODELS=${BRISK_MODELS:-$ROOT/.carry/models}
run_test cuda_runtime_test
run_test cuda_quant_model_test

if [ "$SANITIZE" = 1 ] && command -v compute-sanitizer >/dev/null; then
  say "== compute-sanitizer (memcheck) on attention, norms, gather and two models"
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/tests/cuda_ops_test" \
    --gtest_filter='*Attention*:*Norm*:*Rope*:*Gather*:*Copy2d*' >"$OUT/memcheck.log" 2>&1
  say "memcheck ops: exit $?"
  timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/tests/cuda_model_test" \
    --gtest_filter='*llama_gqa:*gpt2_bf16' >>"$OUT/memcheck.log" 2>&1
  say "memcheck models: exit $?"
  grep -E "ERROR SUMMARY" "$OUT/memcheck.log" | tee -a "$LOG"
  grep -m5 -E "Invalid" "$OUT/memcheck.log" | tee -a "$LOG"
fi

if [ "$BENCH" = 1 ]; then
  say "== bench"
  timeout 400 "$BUILD/bench/cuda_op_bench" --json "$OUT/cuda-ops.json" >"$OUT/bench.log" 2>&1 || status=1
fi

echo
echo "==================== SUMMARY ===================="
# Largest relative error per op family (the tests print one [cuda-err] line per comparison).
cat "$OUT"/cuda_ops_test.log "$OUT"/cuda_quant_ops_test.log "$OUT"/cuda_model_test.log "$OUT"/cuda_quant_model_test.log 2>/dev/null | awk '
  /^\[cuda-err\]/ {
    op = $2; if (op == "matmul" || op == "golden" || op == "attention" || op == "quant-model") op = op " " $3;
    split($NF, kv, "="); e = kv[2] + 0;
    if (!(op in worst) || e > worst[op]) { worst[op] = e; at[op] = $0 }
  }
  END { for (op in worst) printf "max err %-28s %.2e\n", op, worst[op] }' | sort
grep -h -E "^\[  (PASSED|FAILED) |tests? ran" "$OUT"/cuda_ops_test.log "$OUT"/cuda_quant_ops_test.log "$OUT"/cuda_model_test.log "$OUT"/cuda_runtime_test.log \
  "$OUT"/cuda_quant_model_test.log
[ "$BENCH" = 1 ] && tail -24 "$OUT/bench.log"
echo "overall: $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
