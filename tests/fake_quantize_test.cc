// QAT's fake quantization (compress/fake_quantize.h): the fp32 weights it gives compute exactly
// what the packed quantized weights compute in the reference matmul, and re-quantizing them
// changes nothing.
#include <gtest/gtest.h>

#include <random>

#include "compress/fake_quantize.h"
#include "ops/reference.h"

namespace brisk {
namespace {

TEST(FakeQuantize, EqualsThePackedWeightsInTheReferenceMatmul) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  const int64_t rows = 6, cols = 256, m = 3;
  std::vector<float> w(size_t(rows * cols)), x(size_t(m * cols));
  for (float& v : w) v = dist(rng);
  for (float& v : x) v = dist(rng) * 20.0f;
  for (QuantScheme scheme : {QuantScheme::W8, QuantScheme::W4, QuantScheme::FP8, QuantScheme::NF4}) {
    const QuantSpec spec{scheme, 128, Symmetry::Symmetric};
    const std::string name(quant_scheme_name(scheme));
    auto fq = fake_quantize(w.data(), rows, cols, spec, "w");
    ASSERT_TRUE(fq.ok()) << name << ": " << fq.error().message;
    auto packed = quantize_matrix(w.data(), rows, cols, spec, "w");
    ASSERT_TRUE(packed.ok());
    std::vector<float> want(size_t(m * rows)), got(size_t(m * rows));
    ref::matmul(x.data(), m, cols, packed->tensor, nullptr, want.data());
    Tensor dense{fq->data(), DType::F32, {rows, cols}};
    ref::matmul(x.data(), m, cols, dense, nullptr, got.data());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << name;
    double moved = 0;  // rounding changed the weights (the test would be vacuous otherwise)
    for (size_t i = 0; i < w.size(); ++i) moved = std::max(moved, double(std::abs((*fq)[i] - w[i])));
    EXPECT_GT(moved, 0.0) << name;
    if (scheme == QuantScheme::W8 || scheme == QuantScheme::W4) {  // absmax grids keep their scale
      auto again = fake_quantize(fq->data(), rows, cols, spec, "w");
      ASSERT_TRUE(again.ok());
      EXPECT_EQ(again.value(), fq.value()) << name;
    }
  }
  EXPECT_FALSE(fake_quantize(w.data(), rows, cols, QuantSpec{QuantScheme::W4, 100, Symmetry::Symmetric}, "layers.0.q")
                   .ok());
}

}  // namespace
}  // namespace brisk
