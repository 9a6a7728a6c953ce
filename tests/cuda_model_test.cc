// The golden fixtures (tests/fixtures/golden, Hugging Face transformers logits) through the CUDA
// backend: fp32 weights within 1e-4 relative L2 (fp32 GEMMs, no TF32), bf16 weights within 1e-2.
// Chunks of 64, 7 and 1 rows cover the cuBLASLt GEMM, the small-m GEMV and decode paths.
// Skips without a GPU. Prints "[cuda-err] golden <variant> chunk=<c> rel=<err>" per run.
#include <gtest/gtest.h>

#include <cstdio>

#include "backends/cuda/cuda_backend.h"
#include "golden_fixture.h"

namespace brisk {
namespace {

class CudaModelGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaModelGolden, MatchesTransformers) {
  auto backend = make_cuda_backend(0);
  if (!backend.ok()) GTEST_SKIP() << "no GPU: " << backend.error().message;
  const std::string variant = GetParam();
  const double tolerance = golden::is_bf16(variant) ? 1e-2 : 1e-4;
  golden::Golden g = golden::read(variant);
  ASSERT_FALSE(g.ids.empty());
  auto model = load_model(golden::kDir + variant, *backend.value(), {64, 0});
  ASSERT_TRUE(model.ok()) << model.error().message;
  for (int64_t chunk : {int64_t(64), int64_t(7), int64_t(1)}) {
    auto logits = golden::run(*model.value(), g.ids, chunk);
    ASSERT_EQ(logits.size(), g.logits.size());
    const double err = golden::relative_l2(logits, g.logits);
    std::printf("[cuda-err] golden %s chunk=%lld rel=%.3e\n", variant.c_str(), (long long)chunk, err);
    EXPECT_LT(err, tolerance) << variant << " chunk=" << chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariants, CudaModelGolden, ::testing::ValuesIn(golden::kVariants),
                         golden::test_name);

}  // namespace
}  // namespace brisk
