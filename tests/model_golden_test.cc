// Forward passes against Hugging Face transformers (fixtures from scripts/golden/make_fixtures.py):
// fp32 weights within 1e-4 relative L2, bf16 weights (bf16 activations in matmuls) within 1e-2.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_backend.h"
#include "core/cpu_features.h"
#include "golden_fixture.h"

namespace brisk {
namespace {

class ModelGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelGolden, MatchesTransformers) {
  const std::string variant = GetParam();
  const double tolerance = golden::is_bf16(variant) ? 1e-2 : 1e-4;
  golden::Golden g = golden::read(variant);
  ASSERT_FALSE(g.ids.empty());
  for (int threads : {1, 2}) {
    CpuBackend backend(threads);
    auto model = load_model(golden::kDir + variant, backend, {64, 0});
    ASSERT_TRUE(model.ok()) << model.error().message;
    for (int64_t chunk : {int64_t(64), int64_t(7), int64_t(1)}) {
      auto logits = golden::run(*model.value(), g.ids, chunk);
      double err = golden::relative_l2(logits, g.logits);
      EXPECT_LT(err, tolerance) << variant << " threads=" << threads << " chunk=" << chunk;
    }
  }
}

// --bf16-fast: bf16 dot products, BF16 matrices stored pair-packed where the CPU can; the
// fixtures' bf16 tolerance is for exactly that rounding.
TEST_P(ModelGolden, Bf16DotProductsMatchTransformers) {
  const std::string variant = GetParam();
  if (!golden::is_bf16(variant)) GTEST_SKIP() << "fp32 weights";
  golden::Golden g = golden::read(variant);
  for (int threads : {1, 2}) {
    CpuBackend backend(threads, cpu::Bf16Math::Dot);
    auto model = load_model(golden::kDir + variant, backend, {64, 0});
    ASSERT_TRUE(model.ok()) << model.error().message;
    int packed = 0;
    model.value()->visit_tensors(
        [&](const TensorSpec&, Tensor& slot) { packed += slot.block_order == BlockOrder::Bf16Pairs; });
    if (cpu_features().avx512bf16) {
      EXPECT_GT(packed, 0) << variant << ": no matrix was pair-packed";
    }
    for (int64_t chunk : {int64_t(64), int64_t(7), int64_t(1)}) {
      auto logits = golden::run(*model.value(), g.ids, chunk);
      EXPECT_LT(golden::relative_l2(logits, g.logits), 1e-2)
          << variant << " threads=" << threads << " chunk=" << chunk;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariants, ModelGolden, ::testing::ValuesIn(golden::kVariants), golden::test_name);

}  // namespace
}  // namespace brisk
