// cpu::matmul against ref::matmul on odd shapes, every weight dtype, both kernel families, with
// and without bias, misaligned pointers and 1 or 2 threads.
#include "backends/cpu/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "ops/reference.h"

namespace brisk {
namespace {

using cpu::Bf16Math;
using cpu::MatmulIsa;

struct Case {
  MatmulIsa isa;
  DType wtype;
  Bf16Math math = Bf16Math::Exact;
};

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(info.param.isa == MatmulIsa::Avx512 ? "Avx512" : "Avx2") + "_" +
         std::string(dtype_name(info.param.wtype)) + (info.param.math == Bf16Math::Dot ? "_Dot" : "");
}

// Weights stored in their dtype, one spare element in front so a view can start misaligned.
struct Weights {
  std::vector<uint8_t> bytes;
  DType dtype;
  int64_t n, k;

  Weights(DType t, int64_t n_, int64_t k_, std::mt19937& rng) : dtype(t), n(n_), k(k_) {
    const size_t es = dtype_size(t);
    bytes.resize((size_t(n * k) + 1) * es);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (size_t i = 0; i < size_t(n * k) + 1; ++i) {
      float v = dist(rng);
      uint8_t* p = bytes.data() + i * es;
      if (t == DType::F32) {
        std::memcpy(p, &v, 4);
      } else {
        uint16_t h = t == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
        std::memcpy(p, &h, 2);
      }
    }
  }
  Tensor view(int offset) const {
    return Tensor{const_cast<uint8_t*>(bytes.data()) + size_t(offset) * dtype_size(dtype), dtype, {n, k}};
  }
};

std::vector<float> random_floats(size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& f : v) f = dist(rng);
  return v;
}

// Error scale per output: sum_k |x w|, so tolerances are relative to the size of the terms.
std::vector<double> magnitudes(const float* x, int64_t m, int64_t k, const Tensor& w) {
  const int64_t n = w.dim(0);
  std::vector<double> mag(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p)
        s += std::fabs(double(x[i * k + p]) * load_as_f32(w.data, w.dtype, size_t(j * k + p)));
      mag[size_t(i * n + j)] = s;
    }
  return mag;
}

class MatmulTest : public testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!cpu::matmul_isa_supported(GetParam().isa, GetParam().wtype, GetParam().math))
      GTEST_SKIP() << "kernels not supported on this CPU";
  }

  // bf16 dot products round x to bf16 (relative error 2^-9); everything else is fp32.
  double tolerance() const { return GetParam().math == Bf16Math::Dot ? 1e-2 : 1e-5; }

  // Runs every variant (bias, misalignment, threads) of one shape against the reference.
  void check_shape(int64_t m, int64_t k, int64_t n, std::mt19937& rng) {
    const Case& c = GetParam();
    Weights weights(c.wtype, n, k, rng);
    std::vector<float> x_store = random_floats(size_t(m * k) + 1, rng);
    std::vector<float> bias_store = random_floats(size_t(n) + 1, rng);
    const std::vector<double> mag = magnitudes(x_store.data(), m, k, weights.view(0));

    for (int with_bias = 0; with_bias < 2; ++with_bias) {
      const float* bias = with_bias ? bias_store.data() : nullptr;
      std::vector<float> expect(size_t(m * n));
      ref::matmul(x_store.data(), m, k, weights.view(0), bias, expect.data());
      for (int offset = 0; offset < 2; ++offset) {
        // Misaligned copies of every operand; the weights just start one element later.
        std::vector<float> x(x_store.begin(), x_store.end() - 1);
        x.insert(x.begin(), size_t(offset), 0.0f);
        std::vector<float> b(bias_store.begin(), bias_store.end() - 1);
        b.insert(b.begin(), size_t(offset), 0.0f);
        Weights shifted = weights;
        std::memmove(shifted.bytes.data() + size_t(offset) * dtype_size(c.wtype), weights.bytes.data(),
                     size_t(n * k) * dtype_size(c.wtype));
        for (ThreadPool* pool : {&pool1_, &pool2_}) {
          std::vector<float> y(size_t(m * n) + 1, NAN);
          cpu::matmul_with_isa(c.isa, x.data() + offset, m, k, shifted.view(offset),
                               with_bias ? b.data() + offset : nullptr, y.data() + offset, *pool, c.math);
          for (int64_t i = 0; i < m * n; ++i) {
            const double err = std::fabs(double(y[size_t(i + offset)]) - expect[size_t(i)]);
            ASSERT_LE(err, tolerance() * mag[size_t(i)] + 1e-6)
                << "m=" << m << " k=" << k << " n=" << n << " bias=" << with_bias << " offset=" << offset
                << " threads=" << pool->size() << " at (" << i / n << ", " << i % n << ") got "
                << y[size_t(i + offset)] << " want " << expect[size_t(i)];
          }
        }
      }
    }
  }

  ThreadPool pool1_{1};
  ThreadPool pool2_{2};
};

TEST_P(MatmulTest, OddShapes) {
  std::mt19937 rng(1234);
  for (int64_t m : {1, 2, 3, 5, 17, 64})
    for (int64_t k : {1, 7, 31, 32, 33, 100, 257, 1024})
      for (int64_t n : {1, 3, 16, 17, 100}) check_shape(m, k, n, rng);
}

// Long k and many rows: exercises k-chunking (partial sums added into y) and activation blocks.
TEST_P(MatmulTest, LargeShapes) {
  std::mt19937 rng(99);
  check_shape(300, 3001, 37, rng);
  check_shape(1, 5632, 61, rng);
  check_shape(9, 2048, 200, rng);
}

// The AVX-512 bf16 kernels must equal an exact product of bf16-rounded activations with the
// weights: any error beyond fp32 accumulation means a wrong rounding or a lost term.
TEST(MatmulBf16, RoundingIsTheOnlyApproximation) {
  if (!cpu::matmul_isa_supported(MatmulIsa::Avx512, DType::BF16, Bf16Math::Dot))
    GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  ThreadPool pool(2);
  std::mt19937 rng(7);
  for (int64_t m : {23, 100}) {  // dot-product tiles; packed outer-product tiles (64 rows and up)
    const int64_t k = 777, n = 45;
    Weights weights(DType::BF16, n, k, rng);
    std::vector<float> x = random_floats(size_t(m * k), rng);
    std::vector<float> x_rounded(x.size());
    for (size_t i = 0; i < x.size(); ++i) x_rounded[i] = bf16_to_f32(f32_to_bf16(x[i]));
    std::vector<float> expect(size_t(m * n)), y(size_t(m * n));
    ref::matmul(x_rounded.data(), m, k, weights.view(0), nullptr, expect.data());
    cpu::matmul_with_isa(MatmulIsa::Avx512, x.data(), m, k, weights.view(0), nullptr, y.data(), pool,
                         Bf16Math::Dot);
    const std::vector<double> mag = magnitudes(x_rounded.data(), m, k, weights.view(0));
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_LE(std::fabs(y[i] - expect[i]), 1e-5 * mag[i] + 1e-6) << "m=" << m << " at " << i;
  }
}

// Weights stored pair-packed (BlockOrder::Bf16Pairs, as CpuBackend::upload_matrix makes them
// under --bf16-fast): from 64 rows the same outer-product tiles as per-call packing, so the same
// bits; below that the exact product of bf16-rounded activations, as the dot-product tiles.
TEST(MatmulBf16Pairs, StoredPanelsGiveTheSameProducts) {
  if (!cpu::matmul_isa_supported(MatmulIsa::Avx512, DType::BF16, Bf16Math::Dot))
    GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  std::mt19937 rng(21);
  ThreadPool pool1(1), pool2(2);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{16, 2}, {48, 6}, {80, 384}, {128, 1030}, {400, 96}}) {
    Weights weights(DType::BF16, n, k, rng);
    const Tensor rows = weights.view(0);
    ASSERT_TRUE(cpu::packs_bf16_pairs(rows));
    std::vector<uint8_t> packed_bytes(rows.nbytes());
    cpu::pack_bf16_pairs(rows, packed_bytes.data());
    Tensor packed = rows;
    packed.data = packed_bytes.data();
    packed.block_order = BlockOrder::Bf16Pairs;
    std::vector<float> bias = random_floats(size_t(n), rng);
    for (int64_t m : {1, 3, 8, 9, 63, 64, 100, 300}) {
      std::vector<float> x = random_floats(size_t(m * k), rng), x_rounded(x.size());
      for (size_t i = 0; i < x.size(); ++i) x_rounded[i] = bf16_to_f32(f32_to_bf16(x[i]));
      std::vector<float> expect(size_t(m * n));
      ref::matmul(x_rounded.data(), m, k, rows, bias.data(), expect.data());
      const std::vector<double> mag = magnitudes(x_rounded.data(), m, k, rows);
      std::vector<float> from_rows(size_t(m * n));
      cpu::matmul_with_isa(MatmulIsa::Avx512, x.data(), m, k, rows, bias.data(), from_rows.data(), pool2,
                           Bf16Math::Dot);
      for (ThreadPool* pool : {&pool1, &pool2}) {
        std::vector<float> y(size_t(m * n), NAN);
        cpu::matmul(x.data(), m, k, packed, bias.data(), y.data(), *pool, Bf16Math::Dot);
        const std::string at = "n=" + std::to_string(n) + " k=" + std::to_string(k) +
                               " m=" + std::to_string(m) + " threads=" + std::to_string(pool->size());
        if (m >= 64) {
          EXPECT_EQ(y, from_rows) << at;
        }
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_LE(std::fabs(y[i] - expect[i]), 1e-5 * mag[i] + 1e-6) << at << " at " << i;
      }
    }
  }
  Weights odd(DType::BF16, 17, 8, rng), odd_k(DType::BF16, 16, 7, rng), f32(DType::F32, 16, 8, rng);
  EXPECT_FALSE(cpu::packs_bf16_pairs(odd.view(0)));
  EXPECT_FALSE(cpu::packs_bf16_pairs(odd_k.view(0)));
  EXPECT_FALSE(cpu::packs_bf16_pairs(f32.view(0)));
}

// A product over several weights in one job, some stored pair-packed and some row-major, equals
// the separate calls.
TEST(MatmulBf16Pairs, SameInputMixesLayouts) {
  if (!cpu::matmul_isa_supported(MatmulIsa::Avx512, DType::BF16, Bf16Math::Dot))
    GTEST_SKIP() << "no AVX512_BF16 on this CPU";
  std::mt19937 rng(5);
  ThreadPool pool(2);
  const int64_t k = 256;
  Weights a(DType::BF16, 96, k, rng), b(DType::BF16, 40, k, rng);
  std::vector<uint8_t> a_packed(a.view(0).nbytes());
  cpu::pack_bf16_pairs(a.view(0), a_packed.data());
  Tensor wa = a.view(0), wb = b.view(0);
  wa.data = a_packed.data();
  wa.block_order = BlockOrder::Bf16Pairs;
  for (int64_t m : {1, 5, 70}) {
    std::vector<float> x = random_floats(size_t(m * k), rng);
    std::vector<float> ya(size_t(m * 96)), yb(size_t(m * 40)), za(ya.size()), zb(yb.size());
    cpu::matmul(x.data(), m, k, wa, nullptr, ya.data(), pool, Bf16Math::Dot);
    cpu::matmul(x.data(), m, k, wb, nullptr, yb.data(), pool, Bf16Math::Dot);
    const cpu::MatmulTarget targets[] = {{&wa, nullptr, za.data()}, {&wb, nullptr, zb.data()}};
    cpu::matmul_same_input(x.data(), m, k, targets, 2, pool, Bf16Math::Dot);
    EXPECT_EQ(ya, za) << "m=" << m;
    EXPECT_EQ(yb, zb) << "m=" << m;
  }
}

// One parallel job over several weights must give exactly what separate calls give (same tiles,
// same splits of k), including a weight too small to split and a bias on one of them.
TEST(MatmulAuto, SameInputEqualsSeparateCalls) {
  ThreadPool pool(2);
  std::mt19937 rng(11);
  for (Bf16Math math : {Bf16Math::Exact, Bf16Math::Dot})
    for (int64_t m : {1, 3, 70}) {
      const int64_t k = 384;
      Weights a(DType::BF16, 384, k, rng), b(DType::BF16, 5, k, rng), c(DType::BF16, 129, k, rng);
      const Tensor wa = a.view(0), wb = b.view(0), wc = c.view(0);
      std::vector<float> x = random_floats(size_t(m * k), rng), bias = random_floats(129, rng);
      std::vector<float> ya(size_t(m * 384)), yb(size_t(m * 5)), yc(size_t(m * 129));
      std::vector<float> za(ya.size()), zb(yb.size()), zc(yc.size());
      cpu::matmul(x.data(), m, k, wa, nullptr, ya.data(), pool, math);
      cpu::matmul(x.data(), m, k, wb, nullptr, yb.data(), pool, math);
      cpu::matmul(x.data(), m, k, wc, bias.data(), yc.data(), pool, math);
      const cpu::MatmulTarget targets[] = {{&wa, nullptr, za.data()}, {&wb, nullptr, zb.data()},
                                           {&wc, bias.data(), zc.data()}};
      cpu::matmul_same_input(x.data(), m, k, targets, 3, pool, math);
      EXPECT_EQ(ya, za) << "m=" << m;
      EXPECT_EQ(yb, zb) << "m=" << m;
      EXPECT_EQ(yc, zc) << "m=" << m;
    }
}

TEST(MatmulAuto, ZeroKGivesBias) {
  ThreadPool pool(2);
  std::vector<float> w_data(1), bias = {1.5f, -2.0f}, y(6, NAN);
  Tensor w{w_data.data(), DType::F32, {2, 0}};
  cpu::matmul(nullptr, 3, 0, w, bias.data(), y.data(), pool);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(y[size_t(i * 2)], 1.5f);
    EXPECT_EQ(y[size_t(i * 2 + 1)], -2.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(AllPaths, MatmulTest,
                         testing::Values(Case{MatmulIsa::Avx512, DType::F32},
                                         Case{MatmulIsa::Avx512, DType::F16},
                                         Case{MatmulIsa::Avx512, DType::BF16},
                                         Case{MatmulIsa::Avx512, DType::BF16, Bf16Math::Dot},
                                         Case{MatmulIsa::Avx2, DType::F32}, Case{MatmulIsa::Avx2, DType::F16},
                                         Case{MatmulIsa::Avx2, DType::BF16}),
                         case_name);

}  // namespace
}  // namespace brisk
