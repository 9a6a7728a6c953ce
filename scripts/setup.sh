#!/usr/bin/env bash
# Installs brisk's build dependencies (Debian 12 packages) and builds it into ./build.
# Used by the README's two commands and by CI. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ pkg-config python3 nlohmann-json3-dev libpcre2-dev libsentencepiece-dev
          libcli11-dev libgtest-dev libboost-dev libspdlog-dev zlib1g-dev libutf8proc-dev tmux
          clang libclang-rt-14-dev  # clang + compiler-rt: libFuzzer, ASan, UBSan for fuzz/
          python3-jsonschema  # the outside validator of tests/grammar_validation_test.py
          libopenmpi-dev openmpi-bin  # MPI: --tp over CPU processes, and its mpirun tests
          chromium)  # headless: the report pages' tests (brisk optimize --html, bench/report)
# Node.js and npm for the server's client tests: Debian's, unless the machine already has them
# (a NodeSource nodejs conflicts with Debian's npm package).
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The server's end-to-end tests use OpenAI's Node client, pinned by tests/serve/package-lock.json.
(cd tests/serve && npm ci --no-audit --no-fund >/dev/null)
# brisk export's ONNX tests run onnxruntime-node (tests/export/package-lock.json): its CPU runtime is
# in the package, and ONNXRUNTIME_NODE_INSTALL=skip stops its install script fetching CUDA files.
(cd tests/export && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >/dev/null)

# nvcc lives outside PATH on the CUDA images; CMake compiles the CUDA sources when it finds it.
if [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then export PATH=/usr/local/cuda/bin:$PATH; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"

# The fuzzers (fuzz/; ctest runs them, label fuzz): clang with ASan and UBSan, only the libraries
# the parsers need, no CUDA. Its own tree, so the main build keeps its compiler and flags.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRISK_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build-fuzz -j "$(nproc)"
