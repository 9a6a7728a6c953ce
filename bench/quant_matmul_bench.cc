// Decode (m = 1) speed of the quantized CPU kernel families on the tinyllama-1.1b layer shapes.
//   build/bench/quant_matmul_bench [threads=2] [rounds=30] [layer|matrices|cached [dtype]]
// layer: fp32-activation tiles (QuantKernels::Avx512) against the integer tiles (Avx512Int8) over
//   one decoder layer, timed alternately in one process; the fastest round of each counts (on a
//   shared, loaded host a median measures the other tenants), with the weight bytes read per second.
// matrices: each weight shape of a decode token on its own (Auto kernels and the weight layout of
//   CpuBackend::upload, as the model runs them),
//   Q8 / Q4 / BF16, the lm head included, each matrix copied until the set is well past the last
//   level cache so every call streams its weights from DRAM; best and median per call.
// cached: as matrices with one copy each, so the smaller matrices run from cache (compute rate).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/matmul.h"
#include "backends/cpu/matmul_quant.h"
#include "core/dtype.h"
#include "core/quant_blocks.h"

using namespace brisk;

namespace {

struct Layer {
  int64_t n, k;
};
// One tinyllama-1.1b decoder layer: q, k, v, o, gate, up, down.
constexpr Layer kLayers[] = {{2048, 2048}, {256, 2048}, {256, 2048}, {2048, 2048},
                             {5632, 2048}, {5632, 2048}, {2048, 5632}};

struct Weights {
  std::vector<uint8_t> bytes;
  Tensor tensor;
};

Weights make_weights(DType dtype, Layer l, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> row(static_cast<size_t>(l.k));
  Weights w;
  const size_t rb = row_bytes(dtype, l.k);
  w.bytes.resize(rb * size_t(l.n));
  for (int64_t r = 0; r < l.n; ++r) {
    for (auto& v : row) v = dist(rng);
    quantize_row(*quant_traits(dtype), row.data(), l.k, 128, Symmetry::Symmetric, w.bytes.data() + size_t(r) * rb);
  }
  w.tensor = Tensor{w.bytes.data(), dtype, {l.n, l.k}};
  return w;
}

// Copies of one [n, k] matrix (quantized or bf16) adding up to at least kStreamBytes, so calls
// that walk through them read DRAM rather than the last level cache.
constexpr size_t kStreamBytes = size_t(256) << 20;

struct Copies {
  std::vector<uint8_t> bytes;
  std::vector<Tensor> tensors;
  size_t matrix_bytes = 0;
};

Copies make_copies(DType dtype, Layer l, std::mt19937& rng, size_t stream_bytes) {
  Copies c;
  std::vector<uint8_t> one;
  BlockOrder order = BlockOrder::RowMajor;
  if (is_block_dtype(dtype)) {
    Weights w = make_weights(dtype, l, rng);
    one = w.bytes;
    // As CpuBackend::upload lays them out for the model.
    if (cpu::interleaves_for_decode(w.tensor)) {
      cpu::interleave_rows(w.tensor, one.data());
      order = BlockOrder::Interleaved8;
    }
  } else {
    std::normal_distribution<float> dist(0.0f, 0.02f);
    one.resize(size_t(l.n * l.k) * dtype_size(dtype));
    auto* h = reinterpret_cast<uint16_t*>(one.data());
    for (int64_t i = 0; i < l.n * l.k; ++i) h[i] = f32_to_bf16(dist(rng));
  }
  c.matrix_bytes = one.size();
  const size_t count = std::max<size_t>(1, (stream_bytes + one.size() - 1) / one.size());
  c.bytes.resize(one.size() * count);
  for (size_t i = 0; i < count; ++i) {
    std::copy(one.begin(), one.end(), c.bytes.begin() + std::ptrdiff_t(i * one.size()));
    c.tensors.push_back(Tensor{c.bytes.data() + i * one.size(), dtype, {l.n, l.k}});
    c.tensors.back().block_order = order;
  }
  return c;
}

void matmul_any(const float* x, int64_t k, const Tensor& w, float* y, ThreadPool& pool) {
  if (is_block_dtype(w.dtype))
    cpu::matmul_quant(x, 1, k, w, nullptr, y, pool);
  else
    cpu::matmul(x, 1, k, w, nullptr, y, pool);
}

// CPU time of all threads: with one thread, the time the kernel ran even when a loaded host
// deschedules it (all spinning included with more).
double process_cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e6 + double(t.tv_nsec) / 1e3;
}

// Per-call time of each decode matrix shape, and what one token's matmuls add up to.
void run_matrices(ThreadPool& pool, int rounds, size_t stream_bytes, const std::string& only) {
  struct Shape {
    const char* name;
    Layer l;
    int per_token;  // calls per decode token (22 layers)
  };
  const Shape shapes[] = {{"q/o 2048x2048", {2048, 2048}, 44},   {"k/v 256x2048", {256, 2048}, 44},
                          {"gate/up 5632x2048", {5632, 2048}, 44}, {"down 2048x5632", {2048, 5632}, 22},
                          {"head 32000x2048", {32000, 2048}, 1}};
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(5632), y(32000);
  for (auto& v : x) v = dist(rng);
  for (DType dtype : {DType::Q4, DType::Q8, DType::BF16}) {
    if (!only.empty() && only != dtype_name(dtype)) continue;
    double token_ms = 0;
    for (const Shape& s : shapes) {
      Copies c = make_copies(dtype, s.l, rng, stream_bytes);
      std::vector<double> us, cpu_us;
      for (int round = 0; round < rounds; ++round) {
        const double cpu0 = process_cpu_us();
        const auto t0 = std::chrono::steady_clock::now();
        // Every round walks kStreamBytes of weights: the copies, or one copy again and again.
        const size_t calls = std::max(c.tensors.size(), kStreamBytes / c.matrix_bytes);
        for (size_t i = 0; i < calls; ++i) matmul_any(x.data(), s.l.k, c.tensors[i % c.tensors.size()], y.data(), pool);
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
                     double(calls));
        cpu_us.push_back((process_cpu_us() - cpu0) / double(calls));
      }
      std::sort(us.begin(), us.end());
      std::sort(cpu_us.begin(), cpu_us.end());
      const double best = us[0], median = us[us.size() / 2];
      token_ms += median * s.per_token / 1e3;
      std::printf("%-4s %-18s %7.1f us best (%5.1f GB/s)  %7.1f us median (%5.1f GB/s)  cpu %7.1f us  x%d per token\n",
                  std::string(dtype_name(dtype)).c_str(), s.name, best, double(c.matrix_bytes) / best / 1e3, median,
                  double(c.matrix_bytes) / median / 1e3, cpu_us[0], s.per_token);
    }
    std::printf("%-4s matmuls of one token (medians): %.2f ms\n", std::string(dtype_name(dtype)).c_str(), token_ms);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 30;
  ThreadPool pool(threads);
  if (argc > 3 && (std::string(argv[3]) == "matrices" || std::string(argv[3]) == "cached")) {
    // cached: one copy of each matrix, so small ones run from L2 / L3 (the kernels' compute rate).
    run_matrices(pool, rounds, std::string(argv[3]) == "cached" ? 0 : kStreamBytes, argc > 4 ? argv[4] : "");
    return 0;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(5632), y(5632);
  for (auto& v : x) v = dist(rng);
  for (DType dtype : {DType::Q8, DType::Q4, DType::NF4}) {
    std::vector<Weights> ws;
    size_t bytes = 0;
    for (Layer l : kLayers) {
      ws.push_back(make_weights(dtype, l, rng));
      bytes += ws.back().bytes.size();
    }
    const cpu::QuantKernels kinds[] = {cpu::QuantKernels::Avx512, cpu::QuantKernels::Avx512Int8};
    std::vector<double> seconds[2];
    for (int round = 0; round < rounds; ++round)
      for (int i = 0; i < 2; ++i) {
        if (!cpu::quant_kernels_supported(kinds[i], dtype)) continue;
        const auto t0 = std::chrono::steady_clock::now();
        for (size_t j = 0; j < ws.size(); ++j)
          cpu::matmul_quant(x.data(), 1, kLayers[j].k, ws[j].tensor, nullptr, y.data(), pool, kinds[i]);
        seconds[i].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    double best[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
      if (seconds[i].empty()) continue;
      std::sort(seconds[i].begin(), seconds[i].end());
      best[i] = seconds[i][0];
    }
    std::printf("%-4s layer %6.1f MB  fp32 tiles %7.3f ms (%5.1f GB/s)  int8 tiles %7.3f ms (%5.1f GB/s)  %.2fx\n",
                std::string(dtype_name(dtype)).c_str(), double(bytes) / 1e6, best[0] * 1e3, double(bytes) / best[0] / 1e9,
                best[1] * 1e3, best[1] > 0 ? double(bytes) / best[1] / 1e9 : 0.0,
                best[1] > 0 ? best[0] / best[1] : 0.0);
  }
  return 0;
}
