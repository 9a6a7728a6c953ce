// Matmul throughput next to this machine's measured limits (GUIDE rule 10).
//   matmul_bench [--json] [--threads N] [--isa auto|avx512|avx2] [--bf16-math exact|dot]
//                [--dtype bf16|f16|f32] [--only decode|prefill|train] [--shape MxKxN ...]
// Decode (m = 1) is judged against DRAM read bandwidth (weight bytes / time); prefill (m = 512)
// against the dot-product peak of the instructions the kernel uses (bf16 dot or fp32 FMA; with
// --isa avx2 still the machine's best peak). The training section times the two backward products
// of each fp32 layer (input_grad: dx = dy w; weight_grad: dw += dy^T x, cpu/train_gemm.h) at
// Llama-student shapes against the fp32 FMA peak. GFLOP/s, GB/s and fractions use the median call.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/matmul.h"
#include "backends/cpu/roofline.h"
#include "backends/cpu/train_gemm.h"
#include "core/cpu_features.h"
#include "core/dtype.h"

namespace {

using namespace brisk;
using Clock = std::chrono::steady_clock;

// Which cases run: inference matmuls (decode and prefill) and the training products.
enum class Section : uint8_t { All, Decode, Prefill, Train };

struct Options {
  bool json = false;
  int threads = 0;
  cpu::MatmulIsa isa = cpu::MatmulIsa::Auto;
  cpu::Bf16Math bf16_math = cpu::Bf16Math::Dot;
  std::vector<DType> dtypes = {DType::BF16, DType::F16, DType::F32};
  Section section = Section::All;
};

struct Shape {
  int64_t m, k, n;
};

std::vector<Shape> shapes;  // --shape MxKxN, repeatable; empty: the default Llama shapes

// What a case times: y = x w^T, or one of the backward products of that layer.
enum class Op : uint8_t { Matmul, InputGrad, WeightGrad };

const char* op_name(Op op) {
  return op == Op::Matmul ? "matmul" : op == Op::InputGrad ? "input_grad" : "weight_grad";
}

struct Result {
  Op op;
  DType dtype;
  Shape shape;
  double seconds;       // median per call
  double best_seconds;  // fastest call: what the kernel does when the shared machine is quiet
  double gflops, weight_gbps, fraction;
  const char* limit;  // which roofline the fraction refers to
};

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// Enough copies of the weights that a decode sweep streams from DRAM, as a real model whose
// layers together dwarf the last-level cache does; prefill reuses one copy, as one layer does.
std::vector<std::vector<uint8_t>> make_weights(DType t, int64_t n, int64_t k, bool many) {
  const size_t bytes = size_t(n * k) * dtype_size(t);
  const size_t copies = many ? std::max<size_t>(2, (size_t(256) << 20) / bytes + 1) : 1;
  std::vector<uint8_t> first(bytes);
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (size_t i = 0; i < size_t(n * k); ++i) {
    float v = dist(rng);
    if (t == DType::F32) {
      std::memcpy(&first[i * 4], &v, 4);
    } else {
      uint16_t h = t == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(&first[i * 2], &h, 2);
    }
  }
  return std::vector<std::vector<uint8_t>>(copies, first);
}

// Times call(i) for the i-th call after one warm-up: at least 5 calls and 0.5 s. Returns a result
// with the median and fastest call and the GFLOP/s of the median.
template <class Call>
Result time_calls(Op op, DType t, Shape s, Call call) {
  call(size_t(0));
  std::vector<double> times;
  const auto start = Clock::now();
  for (size_t i = 0; times.size() < 5 || std::chrono::duration<double>(Clock::now() - start).count() < 0.5; ++i) {
    auto t0 = Clock::now();
    call(i);
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  Result r{op, t, s, times[times.size() / 2], times.front(), 0, 0, 0, ""};
  r.gflops = 2.0 * double(s.m * s.n * s.k) / r.seconds / 1e9;
  return r;
}

Result run_case(DType t, Shape s, const Options& opt, ThreadPool& pool) {
  const bool decode = s.m == 1;
  auto weights = make_weights(t, s.n, s.k, decode);
  std::vector<float> x(size_t(s.m * s.k), 0.5f), y(size_t(s.m * s.n));
  std::vector<Tensor> views;
  for (auto& w : weights) views.push_back(Tensor{w.data(), t, {s.n, s.k}});
  Result r = time_calls(Op::Matmul, t, s, [&](size_t call) {
    cpu::matmul_with_isa(opt.isa, x.data(), s.m, s.k, views[call % views.size()], nullptr, y.data(), pool,
                         opt.bf16_math);
  });
  r.weight_gbps = double(views[0].nbytes()) / r.seconds / 1e9;
  return r;
}

// One backward product of an fp32 layer y[m, n] = x[m, k] w[n, k]^T. Operands are random: zeros
// or constants could let a CPU shortcut denormal or repeated values.
Result run_train_case(Op op, Shape s, const Options& opt, ThreadPool& pool) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto random = [&](int64_t count) {
    std::vector<float> v(static_cast<size_t>(count));
    for (float& f : v) f = dist(rng);
    return v;
  };
  const std::vector<float> dy = random(s.m * s.n), w = random(s.n * s.k), x = random(s.m * s.k);
  std::vector<float> dx(size_t(s.m * s.k)), dw(size_t(s.n * s.k), 0.0f);
  Result r = time_calls(op, DType::F32, s, [&](size_t) {
    if (op == Op::InputGrad)
      cpu::linear_input_grad(dy.data(), s.m, s.n, w.data(), s.k, dx.data(), pool, opt.isa);
    else
      cpu::linear_weight_grad(dy.data(), s.m, s.n, x.data(), s.k, dw.data(), pool, opt.isa);
  });
  r.weight_gbps = double(s.n * s.k) * sizeof(float) / r.seconds / 1e9;
  return r;
}

// Sets the fraction of the limit that bounds this case: memory for decode, arithmetic for prefill.
void judge(Result& r, const Options& opt, double bw, double fma, double bf16) {
  const DType t = r.dtype;
  const bool decode = r.shape.m == 1 && r.op == Op::Matmul;
  const bool bf16_dots = r.op == Op::Matmul && t == DType::BF16 && opt.bf16_math == cpu::Bf16Math::Dot &&
                         cpu::matmul_isa_supported(cpu::MatmulIsa::Avx512, t, opt.bf16_math) &&
                         opt.isa != cpu::MatmulIsa::Avx2;
  if (decode) {
    r.fraction = r.weight_gbps / bw;
    r.limit = "read_bandwidth";
  } else if (bf16_dots) {
    r.fraction = r.gflops / bf16;
    r.limit = "bf16_dot_peak";
  } else {
    r.fraction = r.gflops / fma;
    r.limit = "fp32_fma_peak";
  }
}

bool parse(int argc, char** argv, Options& opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--json") {
      opt.json = true;
    } else if (a == "--threads") {
      opt.threads = std::atoi(next().c_str());
    } else if (a == "--isa") {
      std::string v = next();
      opt.isa = v == "avx512" ? cpu::MatmulIsa::Avx512
                : v == "avx2" ? cpu::MatmulIsa::Avx2
                              : cpu::MatmulIsa::Auto;
    } else if (a == "--bf16-math") {
      std::string v = next();
      if (v != "exact" && v != "dot") return false;
      opt.bf16_math = v == "exact" ? cpu::Bf16Math::Exact : cpu::Bf16Math::Dot;
    } else if (a == "--only") {
      std::string v = next();
      if (v != "decode" && v != "prefill" && v != "train") return false;
      opt.section = v == "decode" ? Section::Decode : v == "prefill" ? Section::Prefill : Section::Train;
    } else if (a == "--shape") {
      Shape sh{};
      if (std::sscanf(next().c_str(), "%ldx%ldx%ld", &sh.m, &sh.k, &sh.n) != 3 || sh.m < 1 || sh.k < 1 ||
          sh.n < 1)
        return false;
      shapes.push_back(sh);
    } else if (a == "--dtype") {
      std::string v = next();
      for (char& ch : v) ch = char(std::toupper(ch));
      auto t = dtype_from_name(v);
      if (!t) return false;
      opt.dtypes = {*t};
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!parse(argc, argv, opt)) {
    std::fprintf(
        stderr,
        "usage: matmul_bench [--json] [--threads N] [--isa auto|avx512|avx2] [--bf16-math exact|dot] "
        "[--dtype bf16|f16|f32] [--only decode|prefill|train] [--shape MxKxN ...]\n");
    return 2;
  }
  ThreadPool pool(opt.threads);
  // Bandwidth is measured before and after the runs and the higher figure kept: on a shared
  // machine one reading can be depressed by a neighbour, and a fraction of a too-low limit would
  // flatter the kernels.
  const double bw_before = cpu::measure_read_bandwidth_gbps(pool);
  const double fma = cpu::measure_fp32_fma_peak_gflops(pool);
  const double bf16 = cpu::measure_bf16_dot_peak_gflops(pool);

  // Llama-style projections: square attention ones and TinyLlama's MLP up (2048->5632) and down.
  const std::vector<Shape> inference_shapes =
      !shapes.empty() ? shapes
                      : std::vector<Shape>{{1, 2048, 2048},   {1, 2048, 5632},   {1, 5632, 2048},
                                           {512, 2048, 2048}, {512, 2048, 5632}, {512, 5632, 2048}};
  // A Llama student's layers over a 2048-token batch (d_model 256: attention 256->256, MLP
  // 256->704 and 704->256, the 8192-token head), and one square layer at 512 tokens.
  const std::vector<Shape> train_shapes =
      !shapes.empty() ? shapes
                      : std::vector<Shape>{{2048, 256, 256}, {2048, 256, 704}, {2048, 704, 256},
                                           {2048, 256, 8192}, {512, 1024, 1024}};
  std::vector<Result> results;
  for (DType t : opt.dtypes) {
    if (!cpu::matmul_isa_supported(opt.isa, t, opt.bf16_math)) continue;
    for (const Shape& s : inference_shapes) {
      const bool wanted = opt.section == Section::All ||
                          (opt.section == Section::Decode && s.m == 1) || (opt.section == Section::Prefill && s.m > 1);
      if (wanted) results.push_back(run_case(t, s, opt, pool));
    }
  }
  if ((opt.section == Section::All || opt.section == Section::Train) &&
      cpu::matmul_isa_supported(opt.isa, DType::F32))
    for (const Shape& s : train_shapes)
      for (Op op : {Op::InputGrad, Op::WeightGrad}) results.push_back(run_train_case(op, s, opt, pool));
  const double bw_after = cpu::measure_read_bandwidth_gbps(pool);
  const double bw = std::max(bw_before, bw_after);
  for (Result& r : results) judge(r, opt, bw, fma, bf16);

  if (opt.json) {
    std::printf("{\n  \"machine\": {\"cpu\": \"%s\", \"features\": \"%s\", \"threads\": %d},\n",
                cpu_model().c_str(), cpu_features_string().c_str(), pool.size());
    std::printf(
        "  \"roofline\": {\"read_bandwidth_gbps\": %.2f, \"read_bandwidth_before_after_gbps\": "
        "[%.2f, %.2f], \"fp32_fma_peak_gflops\": %.1f, \"bf16_dot_peak_gflops\": %.1f},\n"
        "  \"results\": [\n",
        bw, bw_before, bw_after, fma, bf16);
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf(
          "    {\"op\": \"%s\", \"dtype\": \"%s\", \"m\": %ld, \"k\": %ld, \"n\": %ld, \"ms\": %.4f, \"ms_best\": %.4f, "
          "\"gflops\": %.2f, \"weight_gbps\": %.2f, \"fraction\": %.3f, \"of\": \"%s\"}%s\n",
          op_name(r.op), std::string(dtype_name(r.dtype)).c_str(), long(r.shape.m), long(r.shape.k),
          long(r.shape.n), r.seconds * 1e3, r.best_seconds * 1e3, r.gflops, r.weight_gbps, r.fraction, r.limit,
          i + 1 < results.size() ? "," : "");
    }
    std::printf("  ]\n}\n");
    return 0;
  }
  std::printf("cpu: %s [%s], %d threads\n", cpu_model().c_str(), cpu_features_string().c_str(), pool.size());
  std::printf(
      "read bandwidth %.1f GB/s (before %.1f, after %.1f) | fp32 FMA peak %.1f GFLOP/s | "
      "bf16 dot peak %.1f GFLOP/s\n\n",
      bw, bw_before, bw_after, fma, bf16);
  std::printf("%-11s %-5s %5s %5s %5s %10s %10s %9s %8s %8s  %s\n", "op", "dtype", "m", "k", "n", "ms",
              "best ms", "GFLOP/s", "GB/s", "fraction", "of");
  for (const Result& r : results)
    std::printf("%-11s %-5s %5ld %5ld %5ld %10.4f %10.4f %9.1f %8.1f %7.1f%%  %s\n", op_name(r.op),
                std::string(dtype_name(r.dtype)).c_str(), long(r.shape.m), long(r.shape.k), long(r.shape.n),
                r.seconds * 1e3, r.best_seconds * 1e3, r.gflops, r.weight_gbps, 100 * r.fraction, r.limit);
  return 0;
}
