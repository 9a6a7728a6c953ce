#!/usr/bin/env bash
# Runs one libFuzzer harness for a bounded time on a scratch copy of its seed corpus (libFuzzer
# adds what it finds to the corpus folder; the committed seeds stay as they are). A crash, leak,
# UBSan report, timeout or out-of-memory fails the run and leaves the input in ARTIFACT_DIR.
#   run_fuzzer.sh FUZZER SEED_DIR SECONDS ARTIFACT_DIR
# Exits 77 (ctest: skipped) when FUZZER was not built: scripts/setup.sh builds it into build-fuzz/.
set -euo pipefail
fuzzer=$1 seeds=$2 seconds=$3 artifacts=$4

# Inputs of at most 64 KiB (room for a compressed body past the 32 MiB bound after inflating);
# one input may take 10 s and 2 GiB, well above any legitimate case, so those limits find hangs and
# unbounded allocations rather than slow machines.
max_len=65536 timeout_s=10 rss_limit_mb=2048

if [ ! -x "$fuzzer" ]; then
  echo "SKIPPED: $fuzzer is not built (scripts/setup.sh builds the fuzzers into build-fuzz/)"
  exit 77
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$seeds"/. "$scratch"/
mkdir -p "$artifacts"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# libFuzzer's own failure code is 77, ctest's "skipped": a finding must fail the test instead.
"$fuzzer" "$scratch" -error_exitcode=1 -timeout_exitcode=1 -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout_s" \
  -rss_limit_mb="$rss_limit_mb" -artifact_prefix="$artifacts/$(basename "$fuzzer")-" -print_final_stats=1
