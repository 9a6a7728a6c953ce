// cpu::linear_input_grad and cpu::linear_weight_grad against ref::linear_backward (double sums) on
// random and odd shapes, both kernel families, misaligned operands and 1 or 2 threads; and against
// the in-order fp32 FMA chain that train_gemm.h promises bit for bit.
#include "backends/cpu/train_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ops/reference_grad.h"

namespace brisk {
namespace {

using cpu::MatmulIsa;

std::vector<float> random_floats(size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& f : v) f = dist(rng);
  return v;
}

// The operands of one linear layer's backward pass, each stored one element past `offset` of a
// buffer so that views can start misaligned.
struct Operands {
  int64_t m, n, k;
  std::vector<float> x, w, dy, dw0;  // [m, k], [n, k], [m, n], dw's value before the call [n, k]

  Operands(int64_t m_, int64_t n_, int64_t k_, std::mt19937& rng)
      : m(m_), n(n_), k(k_), x(random_floats(size_t(m * k), rng)), w(random_floats(size_t(n * k), rng)),
        dy(random_floats(size_t(m * n), rng)), dw0(random_floats(size_t(n * k), rng)) {}

  std::string name() const {
    return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
  }
};

// v copied to start `offset` floats into a fresh buffer.
std::vector<float> shifted(const std::vector<float>& v, int offset) {
  std::vector<float> out(size_t(offset), 0.0f);
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

// The sums train_gemm.h promises: one fp32 FMA chain per element in ascending order.
std::vector<float> fma_chain_input_grad(const Operands& op) {
  std::vector<float> dx(size_t(op.m * op.k));
  for (int64_t i = 0; i < op.m; ++i)
    for (int64_t j = 0; j < op.k; ++j) {
      float acc = 0.0f;
      for (int64_t o = 0; o < op.n; ++o) acc = std::fma(op.dy[size_t(i * op.n + o)], op.w[size_t(o * op.k + j)], acc);
      dx[size_t(i * op.k + j)] = acc;
    }
  return dx;
}

std::vector<float> fma_chain_weight_grad(const Operands& op, std::vector<float> dw) {
  for (int64_t o = 0; o < op.n; ++o)
    for (int64_t j = 0; j < op.k; ++j) {
      float acc = dw[size_t(o * op.k + j)];
      for (int64_t i = 0; i < op.m; ++i) acc = std::fma(op.dy[size_t(i * op.n + o)], op.x[size_t(i * op.k + j)], acc);
      dw[size_t(o * op.k + j)] = acc;
    }
  return dw;
}

// Error scales per element: the sums of |terms| (plus |dw0| for the accumulated gradient), so the
// tolerance is relative to the size of what was added, not to a result that cancelled to ~0.
struct Magnitudes {
  std::vector<double> dx, dw;
};

Magnitudes magnitudes(const Operands& op, int calls) {
  Magnitudes mag{std::vector<double>(size_t(op.m * op.k)), std::vector<double>(size_t(op.n * op.k))};
  for (int64_t i = 0; i < op.m; ++i)
    for (int64_t j = 0; j < op.k; ++j)
      for (int64_t o = 0; o < op.n; ++o)
        mag.dx[size_t(i * op.k + j)] += std::fabs(double(op.dy[size_t(i * op.n + o)]) * op.w[size_t(o * op.k + j)]);
  for (int64_t o = 0; o < op.n; ++o)
    for (int64_t j = 0; j < op.k; ++j) {
      double s = 0;
      for (int64_t i = 0; i < op.m; ++i) s += std::fabs(double(op.dy[size_t(i * op.n + o)]) * op.x[size_t(i * op.k + j)]);
      mag.dw[size_t(o * op.k + j)] = calls * s + std::fabs(op.dw0[size_t(o * op.k + j)]);
    }
  return mag;
}

constexpr double kRelativeTolerance = 1e-5;

void expect_close(const std::vector<float>& got, int offset, const std::vector<float>& want,
                  const std::vector<double>& mag, const std::string& what) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(double(got[i + size_t(offset)]) - want[i]);
    ASSERT_LE(err, kRelativeTolerance * mag[i] + 1e-30) << what << " at " << i << ": got " << got[i + size_t(offset)]
                                                        << " want " << want[i];
    worst = std::max(worst, err);
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  EXPECT_LE(worst, kRelativeTolerance * scale) << what << ": max error relative to max |value|";
}

void expect_bits(const std::vector<float>& got, int offset, const std::vector<float>& want, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_EQ(got[i + size_t(offset)], want[i]) << what << " differs from the in-order FMA chain at " << i;
}

class TrainGemmTest : public testing::TestWithParam<MatmulIsa> {
 protected:
  void SetUp() override {
    if (!cpu::matmul_isa_supported(GetParam(), DType::F32)) GTEST_SKIP() << "kernels not supported on this CPU";
  }

  // Both products of one shape, every misalignment and thread count: close to the double
  // reference, equal to the FMA chain; dw is accumulated by two calls.
  void check_shape(int64_t m, int64_t n, int64_t k, std::mt19937& rng) {
    const Operands op(m, n, k, rng);
    std::vector<float> ref_dx(size_t(m * k)), ref_dw = op.dw0;
    ref::linear_backward(op.x.data(), m, k, op.w.data(), n, op.dy.data(), ref_dx.data(), ref_dw.data(), nullptr);
    std::vector<float> scratch_dx(size_t(m * k));
    ref::linear_backward(op.x.data(), m, k, op.w.data(), n, op.dy.data(), scratch_dx.data(), ref_dw.data(), nullptr);
    const Magnitudes mag = magnitudes(op, 2);
    const std::vector<float> chain_dx = fma_chain_input_grad(op);
    const std::vector<float> chain_dw = fma_chain_weight_grad(op, fma_chain_weight_grad(op, op.dw0));

    for (int offset = 0; offset < 2; ++offset) {
      const std::vector<float> x = shifted(op.x, offset), w = shifted(op.w, offset), dy = shifted(op.dy, offset);
      for (ThreadPool* pool : {&pool1_, &pool2_}) {
        const std::string what = op.name() + " offset=" + std::to_string(offset) +
                                 " threads=" + std::to_string(pool->size());
        std::vector<float> dx(size_t(offset + m * k), NAN);  // written: no NaN may survive
        cpu::linear_input_grad(dy.data() + offset, m, n, w.data() + offset, k, dx.data() + offset, *pool, GetParam());
        expect_close(dx, offset, ref_dx, mag.dx, "dx " + what);
        expect_bits(dx, offset, chain_dx, "dx " + what);

        std::vector<float> dw = shifted(op.dw0, offset);
        for (int call = 0; call < 2; ++call)
          cpu::linear_weight_grad(dy.data() + offset, m, n, x.data() + offset, k, dw.data() + offset, *pool,
                                  GetParam());
        expect_close(dw, offset, ref_dw, mag.dw, "dw " + what);
        expect_bits(dw, offset, chain_dw, "dw " + what);
      }
    }
  }

  ThreadPool pool1_{1};
  ThreadPool pool2_{2};
};

// Sizes around the tiles (6 rows, 16-float vectors, 64-column panels), primes and 1.
TEST_P(TrainGemmTest, OddShapes) {
  std::mt19937 rng(1234);
  for (int64_t m : {1, 5, 6, 7, 64, 131})
    for (int64_t n : {1, 13, 16, 97})
      for (int64_t k : {1, 8, 15, 17, 63, 64, 65, 200}) check_shape(m, n, k, rng);
}

TEST_P(TrainGemmTest, RandomShapes) {
  std::mt19937 rng(77);
  std::uniform_int_distribution<int64_t> size(1, 300);
  for (int i = 0; i < 12; ++i) check_shape(size(rng), size(rng), size(rng), rng);
  check_shape(300, 300, 300, rng);
  check_shape(293, 257, 251, rng);
}

// Many rows and a long summed axis: several depth chunks (partial sums carried through C) and
// many tiles per panel (dx down m, dw down n).
TEST_P(TrainGemmTest, BlockedShapes) {
  std::mt19937 rng(5);
  check_shape(1500, 300, 21, rng);
  check_shape(300, 1500, 21, rng);
  check_shape(37, 2111, 3, rng);
}

TEST_P(TrainGemmTest, EmptySums) {
  ThreadPool pool(2);
  std::vector<float> dx(6, NAN), dw{1, 2, 3};
  cpu::linear_input_grad(nullptr, 2, 0, nullptr, 3, dx.data(), pool, GetParam());  // n = 0: dx = 0
  for (float v : dx) EXPECT_EQ(v, 0.0f);
  cpu::linear_weight_grad(nullptr, 0, 1, nullptr, 3, dw.data(), pool, GetParam());  // m = 0: dw unchanged
  EXPECT_EQ(dw, (std::vector<float>{1, 2, 3}));
}

// The prefix names the file, so `ctest -R train_gemm` selects these tests.
INSTANTIATE_TEST_SUITE_P(train_gemm, TrainGemmTest, testing::Values(MatmulIsa::Avx512, MatmulIsa::Avx2),
                         [](const testing::TestParamInfo<MatmulIsa>& info) {
                           return std::string(info.param == MatmulIsa::Avx512 ? "Avx512" : "Avx2");
                         });

}  // namespace
}  // namespace brisk
