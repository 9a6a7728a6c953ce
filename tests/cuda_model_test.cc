// The golden fixtures (tests/fixtures/golden, Hugging Face transformers logits) through the CUDA
// backend: fp32 weights within 1e-4 relative L2 (fp32 GEMMs, no TF32), bf16 weights within 1e-2.
// Chunks of 64, 7 and 1 rows cover the cuBLASLt GEMM, the small-m GEMV and decode paths.
// Skips without a GPU. Prints "[cuda-err] golden <variant> chunk=<c> rel=<err>" per run.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>

#include "backends/cuda/cuda_backend.h"
#include "formats/safetensors.h"
#include "models/model.h"

namespace brisk {
namespace {

const std::string kGolden = std::string(BRISK_FIXTURES_DIR) + "/golden/";

struct Golden {
  std::vector<int32_t> ids;
  std::vector<float> logits;  // [T, vocab]
};

Golden read_golden(const std::string& variant) {
  auto file = SafetensorsFile::open(kGolden + variant + "/logits.safetensors");
  EXPECT_TRUE(file.ok()) << file.error().message;
  Golden g;
  if (!file.ok()) return g;
  for (const auto& t : file.value().tensors()) {
    for (int64_t i = 0; i < t.tensor.numel(); ++i) {
      if (t.name == "input_ids") g.ids.push_back(int32_t(t.tensor.as<int64_t>()[i]));
      if (t.name == "logits") g.logits.push_back(t.tensor.as<float>()[i]);
    }
  }
  return g;
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::isnan(num) ? INFINITY : std::sqrt(num / den);
}

std::vector<float> run(Model& model, const std::vector<int32_t>& ids, int64_t chunk) {
  const int64_t n = int64_t(ids.size()), vocab = model.config().vocab_size;
  KvCache cache = model.make_cache(n);
  std::vector<float> out(size_t(n * vocab));
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t rows = std::min(chunk, n - start);
    model.forward(ids.data() + start, rows, start, cache, LogitRows::All, out.data() + start * vocab);
  }
  return out;
}

class CudaModelGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaModelGolden, MatchesTransformers) {
  auto backend = make_cuda_backend(0);
  if (!backend.ok()) GTEST_SKIP() << "no GPU: " << backend.error().message;
  const std::string variant = GetParam();
  const bool bf16 = variant.size() > 5 && variant.substr(variant.size() - 5) == "-bf16";
  const double tolerance = bf16 ? 1e-2 : 1e-4;
  Golden g = read_golden(variant);
  ASSERT_FALSE(g.ids.empty());
  auto model = load_model(kGolden + variant, *backend.value(), {64, 0});
  ASSERT_TRUE(model.ok()) << model.error().message;
  for (int64_t chunk : {int64_t(64), int64_t(7), int64_t(1)}) {
    auto logits = run(*model.value(), g.ids, chunk);
    ASSERT_EQ(logits.size(), g.logits.size());
    const double err = relative_l2(logits, g.logits);
    std::printf("[cuda-err] golden %s chunk=%lld rel=%.3e\n", variant.c_str(), (long long)chunk, err);
    EXPECT_LT(err, tolerance) << variant << " chunk=" << chunk;
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllVariants, CudaModelGolden,
    ::testing::Values("llama-gqa", "llama3-rope", "llama-mha-tied-headdim", "llama-mqa-bias", "qwen2",
                      "mistral", "gpt2", "llama-gqa-bf16", "llama3-rope-bf16", "llama-mha-tied-headdim-bf16",
                      "llama-mqa-bias-bf16", "qwen2-bf16", "mistral-bf16", "gpt2-bf16"),
    [](const auto& info) {
      std::string name = info.param;
      for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

}  // namespace
}  // namespace brisk
