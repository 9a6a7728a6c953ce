// CUDA op throughput next to limits measured in the same run (GUIDE rule 10).
//   cuda_op_bench [--json PATH] [--device N] [--only gemv|quant_gemv|batch|gemm|attention]
//   cuda_op_bench --profile-mixed N,K,M[,warp|warpgroup]   # 3 plain Q4 mixed-GEMM calls, for ncu
// - Device-to-device copy of 1 GiB: the bandwidth ceiling (bytes read + bytes written).
// - bf16 GEMV (m = 1, also m = 4 and 8) on Llama-3-8B shapes through CudaBackend::matmul (GEMV and
//   batch rows timed as replays of recorded CUDA graphs, as decode runs them), weight
//   copies rotated so the 50 MB L2 never holds them: GB/s of weights (+x, y) vs the copy.
// - Quantized GEMV (Q8 per channel, Q4 groups of 128; m = 1 and 8) and the mixed-input GEMM
//   (m = 16, 64: batched decode) on the q/o, gate/up and down shapes: GB/s of the bytes the kernel
//   reads (codes + scales as uploaded, + x, y) vs the copy; Q8 / Q4 GEMM at m = 2048 vs the bf16
//   peak; bf16 against Q4 / Q8 / NF4 at m = 16..256 (the *_batch rows, ratio = speedup over bf16).
// - bf16 GEMM through CudaBackend::matmul (x rounding + cuBLASLt) at m = 2048, vs the same path
//   at 8192^3, the library's own peak on this device; w8a8 (int8) and fp8 GEMMs (x quantized per
//   token + cuBLASLt + rescale) on the q/o and gate/up shapes, vs the same bf16 peak.
// - Decode attention over a 4096-token fp32 cache (Llama-3-8B heads): GB/s of K/V vs the copy;
//   prefill attention (bf16 tensor cores) over 2048 rows, a 512-row chunk, head_dim 64: TFLOP/s
//   vs the GEMM peak.
// Times are medians over batches of calls timed with CUDA events.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/quant_gemm_mixed.cuh"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/quant_gemv_int8.cuh"
#include "backends/cuda/quant_layout.h"
#include "core/dtype.h"
#include "core/quant_blocks.h"

namespace {

using namespace brisk;

#define BENCH_CUDA_CHECK(expr)                                                             \
  do {                                                                                     \
    const cudaError_t e_ = (expr);                                                         \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

// Median over `batches` of the seconds `enqueue()` takes on the stream, divided by `calls`.
template <class Enqueue>
double median_of_batches(cudaStream_t stream, int batches, int calls, Enqueue&& enqueue) {
  cudaEvent_t start, stop;
  BENCH_CUDA_CHECK(cudaEventCreate(&start));
  BENCH_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> times;
  for (int b = 0; b < batches; ++b) {
    BENCH_CUDA_CHECK(cudaEventRecord(start, stream));
    enqueue();
    BENCH_CUDA_CHECK(cudaEventRecord(stop, stream));
    BENCH_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(double(ms) * 1e-3 / calls);
  }
  BENCH_CUDA_CHECK(cudaEventDestroy(start));
  BENCH_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Median seconds per call of `fn(i)` (i counts calls), over `batches` batches of `per_batch`.
template <class Fn>
double median_seconds(cudaStream_t stream, int batches, int per_batch, Fn&& fn) {
  int call = 0;
  for (int i = 0; i < 3; ++i) fn(call++);  // warm-up: module load, plans, clocks
  BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
  return median_of_batches(stream, batches, per_batch, [&] {
    for (int i = 0; i < per_batch; ++i) fn(call++);
  });
}

// Median seconds per call of `fn(0) .. fn(calls - 1)` recorded once into a CUDA graph and replayed
// `batches` times: the kernels' time without the host's launch cost, as decode runs them (its steps
// are recorded graphs). Short calls timed by median_seconds are bound by that cost instead.
template <class Fn>
double graph_median_seconds(cudaStream_t stream, int batches, int calls, Fn&& fn) {
  for (int i = 0; i < 3; ++i) fn(i);  // warm-up: module load, plans, scratch sizes
  BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  BENCH_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
  for (int i = 0; i < calls; ++i) fn(i);
  BENCH_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  BENCH_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  BENCH_CUDA_CHECK(cudaGraphLaunch(exec, stream));  // warm-up replay
  const double s = median_of_batches(stream, batches, calls, [&] { BENCH_CUDA_CHECK(cudaGraphLaunch(exec, stream)); });
  BENCH_CUDA_CHECK(cudaGraphExecDestroy(exec));
  BENCH_CUDA_CHECK(cudaGraphDestroy(graph));
  return s;
}

// Random, non-zero bf16 values (zeros can run faster than real data).
std::vector<uint16_t> random_bf16(size_t n, uint64_t seed) {
  std::vector<uint16_t> v(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const float f = float(int32_t(s >> 40) - (1 << 23)) / float(1 << 23);  // [-1, 1)
    x = f32_to_bf16(f == 0.0f ? 0.5f : f);
  }
  return v;
}

std::vector<float> random_f32(size_t n, uint64_t seed) {
  std::vector<uint16_t> b = random_bf16(n, seed);
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = bf16_to_f32(b[i]);
  return f;
}

// A [n, k] RTN-quantized matrix in host blocks: 256 distinct rows tiled over it (quantizing 58M
// values per shape would cost seconds and change nothing the kernels see).
std::vector<uint8_t> tiled_quant_blocks(DType dtype, int64_t n, int64_t k) {
  const int64_t distinct = 256;
  const size_t rb = row_bytes(dtype, k);
  std::vector<float> values = random_f32(size_t(distinct * k), uint64_t(n * 3 + k));
  std::vector<uint8_t> blocks(rb * size_t(n));
  for (int64_t r = 0; r < distinct && r < n; ++r)
    quantize_row(*quant_traits(dtype), values.data() + r * k, k, 128, Symmetry::Symmetric,
                 blocks.data() + size_t(r) * rb);
  for (int64_t r = distinct; r < n; ++r)
    std::memcpy(blocks.data() + size_t(r) * rb, blocks.data() + size_t(r % distinct) * rb, rb);
  return blocks;
}

struct Row {
  std::string kind;
  int64_t m, n, k;
  double us, rate, ratio;  // rate: GB/s or TFLOP/s; ratio: vs the copy or the GEMM peak
};

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, only, profile;
  int device = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--profile-mixed") && i + 1 < argc) profile = argv[++i];
    else if (!std::strcmp(argv[i], "--device") && i + 1 < argc) device = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else {
      std::fprintf(stderr, "cuda_op_bench: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  const char* sections[] = {"", "gemv", "quant_gemv", "batch", "gemm", "attention"};
  if (std::none_of(std::begin(sections), std::end(sections), [&](const char* n) { return only == n; })) {
    std::fprintf(stderr, "cuda_op_bench: --only '%s' is not gemv, quant_gemv, batch, gemm or attention\n", only.c_str());
    return 2;
  }
  auto created = CudaBackend::create(device);
  if (!created.ok()) {
    std::fprintf(stderr, "cuda_op_bench: %s\n", created.error().message.c_str());
    return 1;
  }
  CudaBackend& be = *created.value();
  cudaStream_t stream = be.stream();
  cudaDeviceProp prop{};
  BENCH_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::vector<Row> rows;

  // --profile-mixed: three Q4 mixed-GEMM calls of one shape outside any graph (for ncu --launch-skip 1).
  if (!profile.empty()) {
    long long n = 0, k = 0, m = 0;
    char path[16] = "";
    const int got = std::sscanf(profile.c_str(), "%lld,%lld,%lld,%15s", &n, &k, &m, path);
    const std::string p = path;
    if (got < 3 || n < 1 || k < 1 || m < 1 || m > 4096 || !(p.empty() || p == "warp" || p == "warpgroup")) {
      std::fprintf(stderr, "cuda_op_bench: --profile-mixed '%s' is not N,K,M[,warp|warpgroup]\n", profile.c_str());
      return 2;
    }
    if (!p.empty()) cuda::pin_mixed_gemm_path(p == "warp" ? cuda::MixedGemmPath::Warp : cuda::MixedGemmPath::Warpgroup);
    std::vector<uint8_t> blocks = tiled_quant_blocks(DType::Q4, n, k);
    const Tensor w = be.upload(Tensor{blocks.data(), DType::Q4, {n, k}});
    std::vector<float> xh = random_f32(size_t(m * k), 17);
    Buffer x = be.allocate(size_t(m * k)), y = be.allocate(size_t(m * n));
    be.copy_to_device(x.data(), xh.data(), xh.size());
    for (int r = 0; r < 3; ++r) be.matmul(x.data(), m, k, w, nullptr, y.data());
    be.synchronize();
    return 0;
  }

  // Copy ceiling: 1 GiB each way.
  const size_t copy_floats = size_t(1) << 28;
  double copy_gbps = 0;
  {
    Buffer a = be.allocate(copy_floats), b = be.allocate(copy_floats);
    std::vector<float> fill = random_f32(1 << 20, 7);
    for (size_t off = 0; off < copy_floats; off += fill.size())
      be.copy_to_device(a.data() + off, fill.data(), fill.size());
    const double s = median_seconds(stream, 15, 2, [&](int) {
      BENCH_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), copy_floats * 4, cudaMemcpyDeviceToDevice, stream));
    });
    copy_gbps = 2.0 * copy_floats * 4 / s / 1e9;
    rows.push_back({"d2d_copy_1GiB", 0, 0, 0, s * 1e6, copy_gbps, 1.0});
  }

  // GEMV on Llama-3-8B shapes (n, k): k/v, q/o, gate/up, down, head.
  const std::vector<std::pair<int64_t, int64_t>> gemv_shapes = {
      {1024, 4096}, {4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
  // --only SECTION: the copy and that section (gemv, quant_gemv, batch, gemm, attention).
  auto want = [&](const char* section) { return only.empty() || only == section; };
  for (auto [n, k] : want("gemv") ? gemv_shapes : decltype(gemv_shapes){}) {
    const size_t bytes = size_t(n * k) * 2;
    const size_t copies = std::max<size_t>(2, (size_t(200) << 20) / bytes + 1);
    std::vector<uint16_t> host = random_bf16(size_t(n * k), uint64_t(n + k));
    std::vector<Tensor> weights;
    for (size_t c = 0; c < copies; ++c)
      weights.push_back(be.upload(Tensor{host.data(), DType::BF16, {n, k}}));
    host.clear();
    host.shrink_to_fit();
    std::vector<float> xh = random_f32(size_t(8 * k), 11);
    Buffer x = be.allocate(size_t(8 * k)), y = be.allocate(size_t(8 * n));
    be.copy_to_device(x.data(), xh.data(), xh.size());
    for (int64_t m : {1, 4, 8}) {
      const double s = graph_median_seconds(stream, 25, int(std::max<size_t>(8, copies)), [&](int call) {
        be.matmul(x.data(), m, k, weights[size_t(call) % copies], nullptr, y.data());
      });
      const double gbps = (double(bytes) + double(m * k + m * n) * 4) / s / 1e9;
      rows.push_back({"gemv_bf16", m, n, k, s * 1e6, gbps, gbps / copy_gbps});
    }
    be.synchronize();
    // The weights stay owned by the backend until it goes; free device memory for the next shape
    // is plentiful (at most ~2.1 GB per shape).
  }

  // Quantized GEMV.
  for (DType dtype : {DType::Q8, DType::Q4}) {
    if (!want("quant_gemv")) break;
    for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {14336, 4096}, {4096, 14336}}) {
      std::vector<uint8_t> blocks = tiled_quant_blocks(dtype, n, k);
      const size_t bytes = cuda::quant_device_layout(dtype, n, k).bytes;
      const size_t copies = std::max<size_t>(2, (size_t(200) << 20) / bytes + 1);
      std::vector<Tensor> weights;
      for (size_t c = 0; c < copies; ++c) weights.push_back(be.upload(Tensor{blocks.data(), dtype, {n, k}}));
      std::vector<float> xh = random_f32(size_t(64 * k), 11);
      Buffer x = be.allocate(size_t(64 * k)), y = be.allocate(size_t(64 * n));
      be.copy_to_device(x.data(), xh.data(), xh.size());
      for (int64_t m : {1, 8, 16, 64}) {
        const double s = graph_median_seconds(stream, 25, int(std::max<size_t>(8, copies)), [&](int call) {
          be.matmul(x.data(), m, k, weights[size_t(call) % copies], nullptr, y.data());
        });
        const double gbps = (double(bytes) + double(m * k + m * n) * 4) / s / 1e9;
        const std::string kind = std::string(m <= 8 ? "gemv_" : "gemm_mixed_") + (dtype == DType::Q8 ? "q8" : "q4g128");
        rows.push_back({kind, m, n, k, s * 1e6, gbps, gbps / copy_gbps});
      }
      be.synchronize();
    }
  }

  // Batched decode (m = 16..256) on the q/o, gate/up and down shapes: the bf16 GEMM (x rounding +
  // cuBLASLt) against weight-only Q4 / Q8 / NF4 (the mixed-input bf16 GEMM), all through the same
  // rotation of weight copies so the L2 never holds them (and Q4 once more with one copy, L2-resident).
  // Rate: TFLOP/s; ratio: the bf16 GEMM's time over this one's (its speedup). Timed as recorded
  // CUDA graphs (graph_median_seconds): without them the host's launches bound these short calls.
  if (want("batch")) {
    const std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {14336, 4096}, {4096, 14336}};
    const std::vector<int64_t> ms = {16, 32, 64, 128, 256};
    for (auto [n, k] : shapes) {
      std::vector<float> xh = random_f32(size_t(256 * k), 17);
      Buffer x = be.allocate(size_t(256 * k)), y = be.allocate(size_t(256 * n));
      be.copy_to_device(x.data(), xh.data(), xh.size());
      std::vector<double> bf16_us(ms.size());
      auto time_all = [&](const std::string& kind, const std::vector<Tensor>& weights, auto&& call) {
        for (size_t i = 0; i < ms.size(); ++i) {
          const int64_t m = ms[i];
          const double s = graph_median_seconds(stream, 15, int(std::max<size_t>(6, weights.size())),
                                                [&](int c) { call(m, weights[size_t(c) % weights.size()]); });
          if (kind == "gemm_bf16") bf16_us[i] = s * 1e6;
          const double tflops = 2.0 * double(m) * double(n) * double(k) / s / 1e12;
          rows.push_back({kind + "_batch", m, n, k, s * 1e6, tflops, bf16_us[i] / (s * 1e6)});
        }
        be.synchronize();
      };
      {
        std::vector<uint16_t> host = random_bf16(size_t(n * k), uint64_t(n + k + 1));
        const size_t copies = std::max<size_t>(2, (size_t(200) << 20) / (host.size() * 2) + 1);
        std::vector<Tensor> weights;
        for (size_t c = 0; c < copies; ++c) weights.push_back(be.upload(Tensor{host.data(), DType::BF16, {n, k}}));
        time_all("gemm_bf16", weights, [&](int64_t m, const Tensor& w) { be.matmul(x.data(), m, k, w, nullptr, y.data()); });
      }
      for (DType dtype : {DType::Q4, DType::Q8, DType::NF4}) {
        std::vector<uint8_t> blocks = tiled_quant_blocks(dtype, n, k);
        const size_t copies = std::max<size_t>(2, (size_t(200) << 20) / cuda::quant_device_layout(dtype, n, k).bytes + 1);
        std::vector<Tensor> weights;
        for (size_t c = 0; c < copies; ++c) weights.push_back(be.upload(Tensor{blocks.data(), dtype, {n, k}}));
        const std::string name = dtype == DType::Q4 ? "q4g128" : dtype == DType::Q8 ? "q8" : "nf4g128";
        time_all("gemm_mixed_" + name, weights,
                 [&](int64_t m, const Tensor& w) { be.matmul(x.data(), m, k, w, nullptr, y.data()); });
        // Each of the two kernels pinned (the automatic choice above picks between them by m).
        for (auto [path, pinned] : {std::pair{cuda::MixedGemmPath::Warp, "warp_"},
                                    std::pair{cuda::MixedGemmPath::Warpgroup, "warpgroup_"}}) {
          cuda::pin_mixed_gemm_path(path);
          time_all("gemm_mixed_" + std::string(pinned) + name, weights,
                   [&](int64_t m, const Tensor& w) { be.matmul(x.data(), m, k, w, nullptr, y.data()); });
        }
        cuda::pin_mixed_gemm_path(cuda::MixedGemmPath::Auto);
        if (dtype == DType::Q4)  // one copy: the weights stay in the L2 (what the kernel does without DRAM)
          time_all("gemm_mixed_l2_" + name, {weights[0]},
                   [&](int64_t m, const Tensor& w) { be.matmul(x.data(), m, k, w, nullptr, y.data()); });
      }
    }
  }

  // GEMM: m = 2048 on the same shapes, and the 8192^3 peak through the same path.
  double peak_tflops = 0;
  if (want("gemm")) {
    struct G { int64_t m, n, k; };
    const std::vector<G> gemms = {{8192, 8192, 8192}, {2048, 4096, 4096}, {2048, 14336, 4096},
                                  {2048, 4096, 14336}, {2048, 128256, 4096}};
    // Median seconds of CudaBackend::matmul of random x [m, k] with w [n, k].
    auto gemm_seconds = [&](const G& g, const Tensor& w) {
      std::vector<float> xh = random_f32(size_t(g.m * g.k), 13);
      Buffer x = be.allocate(size_t(g.m * g.k)), y = be.allocate(size_t(g.m * g.n));
      be.copy_to_device(x.data(), xh.data(), xh.size());
      return median_seconds(stream, 10, 3, [&](int) { be.matmul(x.data(), g.m, g.k, w, nullptr, y.data()); });
    };
    for (const G& g : gemms) {
      std::vector<uint16_t> host = random_bf16(size_t(g.n * g.k), uint64_t(g.m + g.n));
      const Tensor w = be.upload(Tensor{host.data(), DType::BF16, {g.n, g.k}});
      const double s = gemm_seconds(g, w);
      const double tflops = 2.0 * double(g.m) * double(g.n) * double(g.k) / s / 1e12;
      if (g.m == 8192) peak_tflops = tflops;
      rows.push_back({g.m == 8192 ? "gemm_bf16_peak" : "gemm_bf16", g.m, g.n, g.k, s * 1e6, tflops,
                      tflops / peak_tflops});
      be.synchronize();
    }
    // w8a8 and fp8 through CudaBackend::matmul: per-token quantization of x + cuBLASLt int8 / fp8
    // + the rescaling epilogue, all timed. Ratio vs the bf16 peak (Hopper's int8 / fp8 peak is ~2x).
    // Q8 / Q4 at m = 2048: the mixed-input bf16 GEMM (quant_gemm_mixed).
    for (DType dtype : {DType::Q8A8, DType::F8, DType::Q8, DType::Q4}) {
      for (const G& g : std::vector<G>{{2048, 4096, 4096}, {2048, 14336, 4096}}) {
        std::vector<uint8_t> blocks = tiled_quant_blocks(dtype, g.n, g.k);
        const Tensor w = be.upload(Tensor{blocks.data(), dtype, {g.n, g.k}});
        const double s = gemm_seconds(g, w);
        const double tflops = 2.0 * double(g.m) * double(g.n) * double(g.k) / s / 1e12;
        std::string kind = dtype == DType::Q8A8 ? "gemm_q8a8" : dtype == DType::F8 ? "gemm_f8"
                           : dtype == DType::Q8 ? "gemm_mixed_q8" : "gemm_mixed_q4g128";
        if ((dtype == DType::Q8A8 || dtype == DType::F8) && !be.uses_low_precision_gemm(g.m, g.k, w))
          kind += "_bf16_fallback";
        rows.push_back({kind, g.m, g.n, g.k, s * 1e6, tflops, tflops / peak_tflops});
        be.synchronize();
      }
    }
  }

  // One sequence owning the cache's blocks in order, `rows` queries ending at position ctx - 1.
  std::vector<Buffer> layouts;  // keeps the device copies alive for the timed calls
  auto one_sequence = [&](int64_t rows, int64_t ctx) {
    const int64_t block = 16, blocks = (ctx + block - 1) / block;
    std::vector<float> words(size_t(4 + blocks));  // a SequenceSpan, then the block table
    const int32_t span[4] = {0, int32_t(rows), int32_t(ctx - rows), 0};
    std::memcpy(words.data(), span, sizeof(span));
    for (int64_t b = 0; b < blocks; ++b) {
      const int32_t id = int32_t(b);
      std::memcpy(&words[size_t(4 + b)], &id, 4);
    }
    layouts.push_back(be.allocate(words.size()));
    be.copy_to_device(layouts.back().data(), words.data(), words.size());
    AttentionBatch a;
    a.seqs = reinterpret_cast<const SequenceSpan*>(layouts.back().data());
    a.block_tables = reinterpret_cast<const int32_t*>(layouts.back().data() + 4);
    a.n_seqs = 1;
    a.n_rows = a.max_rows = rows;
    a.max_keys = ctx;
    a.block_size = block;
    return a;
  };

  // Decode attention: one row at position 4095, 32 query heads over 8 KV heads of 128, for each
  // KV cache dtype (the cache is filled through store_kv, so int8/fp8 carry real scales).
  for (KvDtype dtype : {KvDtype::F32, KvDtype::BF16, KvDtype::I8, KvDtype::F8}) {
    if (!want("attention")) break;
    const int64_t ctx = 4096, heads = 32, kv_heads = 8, hd = 128;
    const size_t cache = size_t(ctx * kv_heads * hd), head_rows = size_t(ctx * kv_heads);
    const size_t cache_floats = (cache * kv_element_bytes(dtype) + 3) / 4;
    std::vector<float> fill = random_f32(cache, 17);
    std::vector<int32_t> slot_ids(static_cast<size_t>(ctx));
    for (int64_t i = 0; i < ctx; ++i) slot_ids[size_t(i)] = int32_t(i);
    Buffer k = be.allocate(cache_floats), v = be.allocate(cache_floats), ks = be.allocate(head_rows),
           vs = be.allocate(head_rows), src = be.allocate(cache), slots = be.allocate(size_t(ctx)),
           q = be.allocate(size_t(heads * hd)), out = be.allocate(size_t(heads * hd));
    be.copy_to_device(src.data(), fill.data(), cache);
    be.copy_to_device(slots.data(), reinterpret_cast<const float*>(slot_ids.data()), size_t(ctx));
    be.copy_to_device(q.data(), fill.data(), size_t(heads * hd));
    const KvPools pools{dtype, k.data(), v.data(), ks.data(), vs.data(), kv_heads, hd};
    be.store_kv(src.data(), src.data(), ctx, kv_heads * hd, reinterpret_cast<const int32_t*>(slots.data()), pools);
    const AttentionBatch batch = one_sequence(1, ctx);
    const double s = median_seconds(stream, 25, 10, [&](int) {
      be.attention(q.data(), pools, out.data(), batch, heads, 0.088f);
    });
    const double bytes = 2.0 * (double(cache * kv_element_bytes(dtype)) + (kv_has_scales(dtype) ? 4.0 * double(head_rows) : 0));
    const double gbps = bytes / s / 1e9;
    rows.push_back({"attention_decode_" + std::string(kv_dtype_name(dtype)), 1, ctx, hd, s * 1e6, gbps,
                    gbps / copy_gbps});
  }

  // Prefill attention on the bf16 tensor-core kernel (Llama-3-8B heads): 2048 rows from position
  // 0, a 512-row chunk after a 1536-token prefix, and head_dim 64. FLOPs count only the causal
  // part: QK^T and PV, 2 * 2 * heads * hd per (row, visible key), i.e. 4 * rows^2/2 * heads * hd
  // from position 0. The ratio is to the bf16 GEMM peak measured above.
  if (want("attention")) {
    struct P { int64_t rows, ctx, hd; };
    const int64_t heads = 32, kv = 8;
    for (const P& c : {P{2048, 2048, 128}, P{512, 2048, 128}, P{2048, 2048, 64}}) {
      const size_t q_floats = size_t(c.rows * heads * c.hd), kv_floats = size_t(c.ctx * kv * c.hd);
      std::vector<float> fill = random_f32(std::max(q_floats, kv_floats), 19);
      Buffer q = be.allocate(q_floats), out = be.allocate(q_floats);
      Buffer k = be.allocate(kv_floats), v = be.allocate(kv_floats);
      be.copy_to_device(q.data(), fill.data(), q_floats);
      be.copy_to_device(k.data(), fill.data(), kv_floats);
      be.copy_to_device(v.data(), fill.data() + 1, kv_floats - 1);
      const AttentionBatch batch = one_sequence(c.rows, c.ctx);
      const float scale = 1.0f / std::sqrt(float(c.hd));
      const double s = median_seconds(stream, 10, 5, [&](int) {
        be.attention(q.data(), KvPools{KvDtype::F32, k.data(), v.data(), nullptr, nullptr, kv, c.hd}, out.data(), batch,
                     heads, scale);
      });
      const double first_pos = double(c.ctx - c.rows);
      const double visible = double(c.rows) * (first_pos + double(c.rows) / 2);  // (row, key) pairs
      const double tflops = 4.0 * double(heads * c.hd) * visible / s / 1e12;
      rows.push_back({"attention_prefill_tc", c.rows, c.ctx, c.hd, s * 1e6, tflops,
                      tflops / peak_tflops});
    }
  }

  std::printf("device: %s (%d SMs, %.0f MB L2)\n", prop.name, prop.multiProcessorCount,
              prop.l2CacheSize / 1e6);
  std::printf("%-22s %6s %7s %6s %10s %10s %7s\n", "op", "m", "n", "k", "us", "rate", "ratio");
  for (const Row& r : rows) {
    const bool flops = r.kind.rfind("gemm", 0) == 0 || r.kind.rfind("attention_prefill", 0) == 0;
    std::printf("%-22s %6lld %7lld %6lld %10.1f %7.1f %s %6.1f%%\n", r.kind.c_str(), (long long)r.m,
                (long long)r.n, (long long)r.k, r.us, r.rate, flops ? "TF/s" : "GB/s",
                100.0 * r.ratio);
  }
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    int driver = 0, runtime = 0;
    BENCH_CUDA_CHECK(cudaDriverGetVersion(&driver));
    BENCH_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    out << "{\n  \"bench\": \"bench/cuda_op_bench.cc\",\n  \"device\": \"" << prop.name
        << "\",\n  \"cuda_driver_api\": " << driver << ",\n  \"cuda_runtime\": " << runtime
        << ",\n  \"sm_count\": " << prop.multiProcessorCount
        << ",\n  \"copy_GBps\": " << copy_gbps << ",\n  \"gemm_peak_TFLOPs\": " << peak_tflops
        << ",\n  \"note\": \"gemv/attention ratio = GB/s / copy_GBps (read+write bytes of a 1 GiB "
           "device copy); gemm ratio = TFLOP/s / the same path at 8192^3; attention_prefill_tc "
           "(m = rows, n = keys, k = head_dim; causal FLOPs) ratio = its TFLOP/s over that bf16 "
           "GEMM peak\",\n  \"rows\": [\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      const bool flops = r.kind.rfind("gemm", 0) == 0 || r.kind.rfind("attention_prefill", 0) == 0;
      out << "    {\"op\": \"" << r.kind << "\", \"m\": " << r.m << ", \"n\": " << r.n
          << ", \"k\": " << r.k << ", \"median_us\": " << r.us << ", \""
          << (flops ? "TFLOPs" : "GBps") << "\": " << r.rate << ", \"ratio\": " << r.ratio << "}"
          << (i + 1 < rows.size() ? "," : "") << "\n";
    }
    out << "  ]\n}\n";
  }
  return 0;
}
