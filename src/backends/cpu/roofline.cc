#include "backends/cpu/roofline.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"

namespace brisk::cpu {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

bool has_avx512() { return cpu_features().avx512f && cpu_features().avx512bw; }

// Runs a register-only loop on every pool thread at once and returns the best of a few runs in
// GFLOP/s: a peak is what the core can do, so interference from other processes is discarded.
double run_peak(ThreadPool& pool, double (*loop)(int64_t)) {
  // Calibrate on one thread so each timed run lasts about 50 ms regardless of the machine.
  int64_t iters = 1 << 12;
  double dt = 0;
  while (dt < 0.01) {
    iters *= 2;
    auto t0 = Clock::now();
    loop(iters);
    dt = seconds_since(t0);
  }
  iters = int64_t(double(iters) * 0.05 / dt);

  std::vector<double> flops(size_t(pool.size()));
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    pool.run_on_all([&](int t) { flops[size_t(t)] = loop(iters); });
    double elapsed = seconds_since(t0);
    double total = 0;
    for (double f : flops) total += f;
    best = std::max(best, total / elapsed / 1e9);
  }
  return best;
}

}  // namespace

double measure_read_bandwidth_gbps(ThreadPool& pool) {
  // 1 GiB is far beyond any last-level cache, so every pass streams from DRAM.
  constexpr size_t kBytes = size_t(1) << 30;
  constexpr size_t kPage = size_t(2) << 20;
  void* buffer = std::aligned_alloc(kPage, kBytes);
  BRISK_CHECK(buffer != nullptr, "measure_read_bandwidth_gbps: cannot allocate 1 GiB");
  // Huge pages cut the page-fault cost of the first touch and TLB misses during the passes.
  madvise(buffer, kBytes, MADV_HUGEPAGE);

  const size_t parts = size_t(pool.size());
  const size_t chunk = kBytes / parts / 4096 * 4096;
  auto* bytes = static_cast<unsigned char*>(buffer);
  // Each thread first-touches the part it will read, which keeps pages near it on NUMA machines.
  pool.run_on_all([&](int t) { std::memset(bytes + size_t(t) * chunk, t + 1, chunk); });

  auto read = has_avx512() ? detail::read_xor_avx512 : detail::read_xor_avx2;
  std::vector<uint64_t> sink(parts);
  std::vector<double> rates;
  for (int pass = 0; pass < 7; ++pass) {
    auto t0 = Clock::now();
    pool.run_on_all([&](int t) { sink[size_t(t)] = read(bytes + size_t(t) * chunk, chunk); });
    rates.push_back(double(chunk * parts) / seconds_since(t0) / 1e9);
  }
  std::free(buffer);
  return median(rates);
}

double measure_fp32_fma_peak_gflops(ThreadPool& pool) {
  return run_peak(pool, has_avx512() ? detail::fma_loop_avx512 : detail::fma_loop_avx2);
}

double measure_bf16_dot_peak_gflops(ThreadPool& pool) {
  if (!has_avx512() || !cpu_features().avx512bf16) return 0.0;
  return run_peak(pool, detail::bf16_dot_loop_avx512);
}

}  // namespace brisk::cpu
