// Decode (m = 1) speed of the quantized CPU kernel families on the tinyllama-1.1b layer shapes:
// fp32-activation tiles (QuantKernels::Avx512) against the integer tiles (Avx512Int8), timed
// alternately in one process; the fastest round of each counts (on a shared, loaded host a
// median measures the other tenants), with the weight bytes read per second.
//   build/bench/quant_matmul_bench [threads=2] [rounds=30]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/matmul_quant.h"
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

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 30;
  ThreadPool pool(threads);
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
