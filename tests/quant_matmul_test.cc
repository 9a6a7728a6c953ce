// Quantized formats and kernels: block encode/decode round trips, e4m3 rounding, RTN error bounds,
// and every CPU kernel family against the scalar reference (ref::matmul) on random shapes with
// odd sizes and misaligned activations.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "backends/cpu/matmul_quant.h"
#include "backends/cpu/sparse_q8.h"
#include "core/quant_blocks.h"
#include "ops/reference.h"

namespace brisk {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A quantized [rows, cols] matrix in its own storage.
struct QuantMatrix {
  std::vector<uint8_t> bytes;
  Tensor tensor;
};

QuantMatrix quantize(const std::vector<float>& w, int64_t rows, int64_t cols, DType dtype, Symmetry sym,
                     int64_t group = 128) {
  QuantMatrix q;
  const size_t rb = row_bytes(dtype, cols);
  q.bytes.resize(rb * size_t(rows));
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(*quant_traits(dtype), w.data() + r * cols, cols, group, sym, q.bytes.data() + size_t(r) * rb);
  q.tensor = Tensor{q.bytes.data(), dtype, {rows, cols}};
  return q;
}

TEST(QuantFormats, E4m3RoundTripsEveryCodeAndRoundsToNearestEven) {
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;  // NaN
    const float v = e4m3_to_f32(uint8_t(b));
    if (v == 0.0f) continue;  // +-0 both fine
    EXPECT_EQ(f32_to_e4m3(v), b) << b;
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f32_to_e4m3(1000.0f), 0x7e);                        // saturates
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(1.0625f)), 1.0f);           // tie between 1 and 1.125 -> even
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(1.1875f)), 1.25f);          // tie between 1.125 and 1.25 -> even
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));           // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(std::ldexp(1.0f, -11))), 0.0f);
}

TEST(QuantFormats, CodesRoundTripThroughBlocks) {
  for (DType dtype : {DType::Q8, DType::Q8A8, DType::F8, DType::Q4, DType::NF4, DType::LOG4}) {
    const QuantTraits& t = *quant_traits(dtype);
    const int64_t n = 300, group = t.per_channel ? n : 128;
    auto x = random_values(size_t(n), 7);
    std::vector<uint8_t> blocks(row_bytes(dtype, n));
    quantize_row(t, x.data(), n, group, Symmetry::Symmetric, blocks.data());
    std::vector<int32_t> codes(static_cast<size_t>(n));
    std::vector<GroupParams> params(3);
    t.decode_row(blocks.data(), n, group, codes.data(), params.data());
    std::vector<uint8_t> again(blocks.size());
    t.encode_row(codes.data(), params.data(), n, group, again.data());
    EXPECT_EQ(blocks, again) << dtype_name(dtype);
    std::vector<float> deq(static_cast<size_t>(n));
    t.dequantize_row(blocks.data(), n, deq.data());
    for (int64_t i = 0; i < n; ++i)
      EXPECT_FLOAT_EQ(deq[size_t(i)], dequantize_code(t, codes[size_t(i)], params[size_t(i / group)]));
  }
}

TEST(QuantFormats, RoundToNearestErrorIsWithinHalfAStep) {
  const int64_t n = 256;
  auto x = random_values(size_t(n), 3);
  float absmax = 0, lo = 0, hi = 0;
  for (float v : x) absmax = std::max(absmax, std::fabs(v)), lo = std::min(lo, v), hi = std::max(hi, v);
  struct Case {
    DType dtype;
    Symmetry sym;
    float max_error;
  };
  const Case cases[] = {{DType::Q8, Symmetry::Symmetric, absmax / 127 / 2 * 1.001f},
                        {DType::Q4, Symmetry::Symmetric, absmax / 7 / 2 * 1.01f},
                        {DType::Q4, Symmetry::Asymmetric, (hi - lo) / 15 * 1.01f},  // half a step + zero rounding
                        {DType::F8, Symmetry::Symmetric, absmax / 16 * 1.001f}};
  for (const Case& c : cases) {
    std::vector<uint8_t> blocks(row_bytes(c.dtype, n));
    quantize_row(*quant_traits(c.dtype), x.data(), n, 128, c.sym, blocks.data());
    std::vector<float> deq(static_cast<size_t>(n));
    quant_traits(c.dtype)->dequantize_row(blocks.data(), n, deq.data());
    for (int64_t i = 0; i < n; ++i)
      EXPECT_LE(std::fabs(deq[size_t(i)] - x[size_t(i)]), c.max_error) << dtype_name(c.dtype) << " " << i;
  }
}

TEST(QuantFormats, AsymmetricZeroPointFollowsMinMax) {
  std::vector<float> x(128);
  for (int i = 0; i < 128; ++i) x[size_t(i)] = 1.0f + float(i) / 127.0f * 3.0f;  // all positive: 1..4
  GroupParams p = choose_params(*quant_traits(DType::Q4), x.data(), 128, Symmetry::Asymmetric);
  EXPECT_EQ(p.zero, 0);  // the range is widened to include 0, so 0 is the minimum
  EXPECT_NEAR(p.scale, 4.0f / 15.0f, 1e-3f);
}

TEST(QuantFormats, ActivationBlocksRoundWithinHalfAStepOfEachBlock) {
  const int64_t n = 70, padded = 96;  // two full blocks, a partial one, no padding block
  auto x = random_values(size_t(n), 5);
  x[3] = 40.0f;  // an outlier coarsens its own block only
  std::vector<int8_t> codes(size_t(padded), 99);
  std::vector<float> scales(size_t(padded / kActivationBlock));
  quantize_activation_blocks(x.data(), n, padded, codes.data(), scales.data());
  EXPECT_FLOAT_EQ(scales[0], 40.0f / 127.0f);
  EXPECT_LT(scales[1], 40.0f / 127.0f / 4);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_LE(std::fabs(codes[size_t(i)] * scales[size_t(i / kActivationBlock)] - x[size_t(i)]),
              scales[size_t(i / kActivationBlock)] * 0.5001f)
        << i;
  for (int64_t i = n; i < padded; ++i) EXPECT_EQ(codes[size_t(i)], 0) << i;
}

struct KernelCase {
  DType dtype;
  cpu::QuantKernels kernels;
};

class QuantMatmulTest : public ::testing::TestWithParam<KernelCase> {};

TEST_P(QuantMatmulTest, MatchesReferenceOnRandomShapes) {
  const KernelCase c = GetParam();
  if (!cpu::quant_kernels_supported(c.kernels, c.dtype)) GTEST_SKIP() << "kernels not supported on this CPU";
  ThreadPool pool(3);
  std::mt19937 rng(11);
  const int64_t ms[] = {1, 2, 3, 4, 5, 9, 70};
  const int64_t ks[] = {128, 256, 384, 200, 1000};
  const int64_t ns[] = {1, 3, 4, 13, 67};
  for (int64_t m : ms)
    for (int64_t k : ks)
      for (int64_t n : ns) {
        const bool asym = c.dtype == DType::Q4 && (m + n) % 2 == 1;
        auto w = random_values(size_t(n * k), uint32_t(rng()), 0.05f);
        QuantMatrix q = quantize(w, n, k, c.dtype, asym ? Symmetry::Asymmetric : Symmetry::Symmetric);
        // One extra float in front: activations start 4 bytes off any vector alignment.
        auto xbuf = random_values(size_t(m * k + 1), uint32_t(rng()));
        const float* x = xbuf.data() + 1;
        auto bias = random_values(size_t(n), uint32_t(rng()));
        const float* b = (n % 2) ? bias.data() : nullptr;
        std::vector<float> want(size_t(m * n)), got(size_t(m * n), NAN);
        if (c.kernels == cpu::QuantKernels::Avx512Int8)
          ref::matmul_int8_activations(x, m, k, q.tensor, b, want.data());
        else
          ref::matmul(x, m, k, q.tensor, b, want.data());
        cpu::matmul_quant(x, m, k, q.tensor, b, got.data(), pool, c.kernels);
        // Summation order differs from the double-precision reference: bound by sum |x * w|.
        std::vector<float> wrow(static_cast<size_t>(k));
        for (int64_t j = 0; j < n; ++j) {
          quant_traits(c.dtype)->dequantize_row(q.bytes.data() + size_t(j) * row_bytes(c.dtype, k), k, wrow.data());
          for (int64_t i = 0; i < m; ++i) {
            double mag = 0;
            for (int64_t p = 0; p < k; ++p) mag += std::fabs(double(x[i * k + p]) * wrow[size_t(p)]);
            // Q8A8: the activations are quantized too; one step of a per-token code can flip
            // between paths only through float rounding, so the same bound holds.
            const double tol = 1e-5 * mag + 1e-6;
            ASSERT_NEAR(got[size_t(i * n + j)], want[size_t(i * n + j)], tol)
                << dtype_name(c.dtype) << " m=" << m << " k=" << k << " n=" << n << " at " << i << "," << j;
          }
        }
      }
}

// The integer tiles on the decode shapes of a real model (long k, several weight tiles per
// thread, odd row counts), with asymmetric zero points and activations whose every code is +-127
// (the largest lane sums the 4-bit tiles correct zero points with).
TEST(QuantMatmulInt8, MatchesReferenceOnModelShapesAndSaturatedActivations) {
  if (!cpu::quant_kernels_supported(cpu::QuantKernels::Avx512Int8, DType::Q4)) GTEST_SKIP() << "no AVX-512 VNNI";
  ThreadPool pool(2);
  std::mt19937 rng(23);
  struct Shape {
    int64_t m, k, n;
  };
  for (DType dtype : {DType::Q8, DType::Q4, DType::NF4, DType::LOG4})
    for (Shape s : {Shape{1, 2048, 61}, Shape{1, 5632, 35}, Shape{3, 2048, 9}})
      for (bool saturated : {false, true}) {
        const bool asym = dtype == DType::Q4 && s.n % 2 == 1;
        auto w = random_values(size_t(s.n * s.k), uint32_t(rng()), 0.05f);
        QuantMatrix q = quantize(w, s.n, s.k, dtype, asym ? Symmetry::Asymmetric : Symmetry::Symmetric);
        auto x = random_values(size_t(s.m * s.k), uint32_t(rng()));
        if (saturated)
          for (size_t i = 0; i < x.size(); ++i) x[i] = (i / 7) % 2 ? 3.0f : -3.0f;
        std::vector<float> want(size_t(s.m * s.n)), got(size_t(s.m * s.n), NAN);
        ref::matmul_int8_activations(x.data(), s.m, s.k, q.tensor, nullptr, want.data());
        cpu::matmul_quant(x.data(), s.m, s.k, q.tensor, nullptr, got.data(), pool, cpu::QuantKernels::Avx512Int8);
        std::vector<float> wrow(static_cast<size_t>(s.k));
        for (int64_t j = 0; j < s.n; ++j) {
          quant_traits(dtype)->dequantize_row(q.bytes.data() + size_t(j) * row_bytes(dtype, s.k), s.k, wrow.data());
          for (int64_t i = 0; i < s.m; ++i) {
            double mag = 0;
            for (int64_t p = 0; p < s.k; ++p) mag += std::fabs(double(x[size_t(i * s.k + p)]) * wrow[size_t(p)]);
            ASSERT_NEAR(got[size_t(i * s.n + j)], want[size_t(i * s.n + j)], 1e-5 * mag + 1e-6)
                << dtype_name(dtype) << " m=" << s.m << " k=" << s.k << " n=" << s.n << " saturated=" << saturated
                << " at " << i << "," << j;
          }
        }
      }
}

// Several weights against one x (q/k/v, gate/up): the same numbers as one call per weight, for
// every kernel family, with row counts that split unevenly over the threads.
TEST(QuantMatmulSameInput, MatchesOneCallPerWeight) {
  ThreadPool pool(3);
  std::mt19937 rng(31);
  for (DType dtype : {DType::Q8, DType::Q8A8, DType::Q4, DType::NF4})
    for (auto kernels : {cpu::QuantKernels::Avx512Int8, cpu::QuantKernels::Avx512, cpu::QuantKernels::Scalar})
      for (int64_t m : {1, 5}) {
        if (!cpu::quant_kernels_supported(kernels, dtype)) continue;
        const int64_t k = 384, ns[] = {67, 13, 5};
        std::vector<QuantMatrix> ws;
        std::vector<std::vector<float>> biases, together, alone;
        for (int64_t n : ns) {
          ws.push_back(quantize(random_values(size_t(n * k), uint32_t(rng()), 0.05f), n, k, dtype, Symmetry::Symmetric));
          biases.push_back(random_values(size_t(n), uint32_t(rng())));
          together.emplace_back(size_t(m * n), NAN);
          alone.emplace_back(size_t(m * n), NAN);
        }
        auto x = random_values(size_t(m * k), uint32_t(rng()));
        cpu::MatmulTarget targets[3];
        for (int i = 0; i < 3; ++i) {
          targets[i] = {&ws[size_t(i)].tensor, i == 1 ? nullptr : biases[size_t(i)].data(), together[size_t(i)].data()};
          cpu::matmul_quant(x.data(), m, k, ws[size_t(i)].tensor, targets[i].bias, alone[size_t(i)].data(), pool, kernels);
        }
        cpu::matmul_quant_same_input(x.data(), m, k, targets, 3, pool, kernels);
        for (int i = 0; i < 3; ++i) EXPECT_EQ(together[size_t(i)], alone[size_t(i)]) << dtype_name(dtype) << " m=" << m;
      }
}

// BlockOrder::Interleaved8 moves blocks, not arithmetic: every tile computes each row as it does
// row-major, so results are bit-equal, at decode and prefill, over several threads and together
// with other weights. Shapes with n not a multiple of 8 keep the row-major layout.
TEST(QuantMatmulInterleaved, EqualsRowMajorBitForBit) {
  ThreadPool pool(3);
  std::mt19937 rng(47);
  for (DType dtype : {DType::Q8, DType::Q4, DType::NF4, DType::LOG4}) {
    if (!cpu::quant_kernels_supported(cpu::QuantKernels::Avx512Int8, dtype)) GTEST_SKIP() << "no AVX-512 VNNI";
    for (int64_t m : {1, 3, 9})
      for (auto [n, k] : {std::pair<int64_t, int64_t>{8, 128}, {48, 300}, {136, 1000}, {1024, 256}}) {
        const Symmetry sym = dtype == DType::Q4 ? Symmetry::Asymmetric : Symmetry::Symmetric;
        QuantMatrix w = quantize(random_values(size_t(n * k), uint32_t(rng()), 0.05f), n, k, dtype, sym);
        ASSERT_TRUE(cpu::interleaves_for_decode(w.tensor));
        std::vector<uint8_t> packed(w.tensor.nbytes());
        cpu::interleave_rows(w.tensor, packed.data());
        Tensor interleaved = w.tensor;
        interleaved.data = packed.data();
        interleaved.block_order = BlockOrder::Interleaved8;
        EXPECT_FALSE(cpu::interleaves_for_decode(interleaved));
        const auto x = random_values(size_t(m * k), uint32_t(rng()));
        const auto bias = random_values(size_t(n), uint32_t(rng()));
        std::vector<float> plain(size_t(m * n), NAN), moved(size_t(m * n), NAN);
        cpu::matmul_quant(x.data(), m, k, w.tensor, bias.data(), plain.data(), pool);
        cpu::matmul_quant(x.data(), m, k, interleaved, bias.data(), moved.data(), pool);
        EXPECT_EQ(plain, moved) << dtype_name(dtype) << " m=" << m << " n=" << n << " k=" << k;
      }
  }
  QuantMatrix odd = quantize(random_values(size_t(12 * 128), 5), 12, 128, DType::Q4, Symmetry::Symmetric);
  EXPECT_FALSE(cpu::interleaves_for_decode(odd.tensor));
}

// The sparse layout (backends/cpu/sparse_q8.h) of a Q8 matrix with many exact zeros computes the
// dense layout's results bit for bit, at every tile shape (odd n, k not a multiple of the block,
// rows of very different density), alone and beside dense weights in one same-input call, and
// holds about the non-zeros only.
TEST(QuantMatmulSparse, EqualsDenseBitForBit) {
  if (!cpu::sparse_q8_supported()) GTEST_SKIP() << "no AVX-512 VBMI2";
  ThreadPool pool(3);
  std::mt19937 rng(53);
  for (double zeros : {0.5, 0.7, 0.95})
    for (int64_t m : {1, 2, 5, 9})
      for (auto [n, k] : {std::pair<int64_t, int64_t>{8, 64}, {13, 300}, {48, 1000}, {136, 257}}) {
        std::vector<float> values = random_values(size_t(n * k), uint32_t(rng()));
        std::uniform_real_distribution<double> u(0, 1);
        for (int64_t r = 0; r < n; ++r)  // row r keeps about (1 - zeros) of its values, the first row all
          for (int64_t j = 0; j < k; ++j)
            if (r > 0 && u(rng) < zeros * (r % 3 == 1 ? 1.0 : 0.8)) values[size_t(r * k + j)] = 0;
        QuantMatrix w = quantize(values, n, k, DType::Q8, Symmetry::Symmetric);
        const cpu::SparseQ8Plan plan = cpu::plan_sparse_q8(w.tensor);
        if (zeros >= 0.95) EXPECT_TRUE(plan.worthwhile) << zeros;
        std::vector<uint8_t> bytes(plan.bytes + 64);
        uint8_t* aligned = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
        cpu::pack_sparse_q8(w.tensor, plan, aligned);
        Tensor sparse = w.tensor;
        sparse.data = aligned;
        sparse.block_order = BlockOrder::SparseRows;
        EXPECT_EQ(sparse.nbytes(), plan.bytes);
        EXPECT_LE(int64_t(cpu::sparse_q8_header(sparse).nonzeros), int64_t(double(n * k) * (1.1 - 0.8 * zeros)) + k);
        const auto x = random_values(size_t(m * k), uint32_t(rng()));
        const auto bias = random_values(size_t(n), uint32_t(rng()));
        std::vector<float> dense_y(size_t(m * n), NAN), sparse_y(size_t(m * n), NAN), again(size_t(m * n), NAN),
            beside(size_t(m * n), NAN);
        cpu::matmul_quant(x.data(), m, k, w.tensor, bias.data(), dense_y.data(), pool);
        cpu::matmul_quant(x.data(), m, k, sparse, bias.data(), sparse_y.data(), pool);
        EXPECT_EQ(dense_y, sparse_y) << "zeros=" << zeros << " m=" << m << " n=" << n << " k=" << k;
        const cpu::MatmulTarget both[] = {{&w.tensor, bias.data(), beside.data()}, {&sparse, bias.data(), again.data()}};
        cpu::matmul_quant_same_input(x.data(), m, k, both, 2, pool);
        EXPECT_EQ(dense_y, again);
        EXPECT_EQ(dense_y, beside);
      }
}

std::vector<KernelCase> all_cases() {
  std::vector<KernelCase> cases;
  for (DType d : {DType::Q8, DType::Q8A8, DType::F8, DType::Q4, DType::NF4, DType::LOG4})
    for (auto k : {cpu::QuantKernels::Avx512Int8, cpu::QuantKernels::Avx512, cpu::QuantKernels::Scalar})
      if (k != cpu::QuantKernels::Avx512Int8 || (d != DType::Q8A8 && d != DType::F8)) cases.push_back({d, k});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AllFormats, QuantMatmulTest, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) {
                           const cpu::QuantKernels k = info.param.kernels;
                           return std::string(dtype_name(info.param.dtype)) +
                                  (k == cpu::QuantKernels::Avx512Int8 ? "_avx512_int8"
                                   : k == cpu::QuantKernels::Avx512   ? "_avx512"
                                                                      : "_scalar");
                         });

}  // namespace
}  // namespace brisk
