// Shared by the golden-model tests of every backend: the fixtures in tests/fixtures/golden (Hugging
// Face transformers logits, scripts/golden/make_fixtures.py) and how a model is run over them.
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "models/model.h"

namespace brisk::golden {

inline const std::string kDir = std::string(BRISK_FIXTURES_DIR) + "/golden/";

// Every variant; "-bf16" twins hold bf16 weights with logits from fp32 compute on them.
inline const std::vector<std::string> kVariants = {
    "llama-gqa",      "llama3-rope",      "llama-mha-tied-headdim",      "llama-mqa-bias",
    "qwen2",          "mistral",          "gpt2",                        "llama-gqa-bf16",
    "llama3-rope-bf16", "llama-mha-tied-headdim-bf16", "llama-mqa-bias-bf16", "qwen2-bf16",
    "mistral-bf16",   "gpt2-bf16",
    // Families added after the first three (scripts/golden/make_family_fixtures.py, families.json).
    "phi3", "phi3-bf16", "phi3-longrope", "phi3-longrope-bf16", "mistral-window", "mistral-window-bf16",
    "gemma2", "gemma2-bf16", "gemma2-nocap", "gemma2-nocap-bf16", "gemma3", "gemma3-bf16"};

inline bool is_bf16(const std::string& variant) {
  return variant.size() > 5 && variant.compare(variant.size() - 5, 5, "-bf16") == 0;
}

struct Golden {
  std::vector<int32_t> ids;
  std::vector<float> logits;  // [T, vocab]
};

inline Golden read(const std::string& variant) {
  auto file = SafetensorsFile::open(kDir + variant + "/logits.safetensors");
  EXPECT_TRUE(file.ok()) << file.error().message;
  Golden g;
  if (!file.ok()) return g;
  for (const auto& t : file.value().tensors())
    for (int64_t i = 0; i < t.tensor.numel(); ++i) {
      if (t.name == "input_ids") g.ids.push_back(int32_t(t.tensor.as<int64_t>()[i]));
      if (t.name == "logits") g.logits.push_back(t.tensor.as<float>()[i]);
    }
  return g;
}

inline double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::isnan(num) ? INFINITY : std::sqrt(num / den);
}

// Runs the ids through the model in chunks of `chunk` rows (1 = token-by-token decode).
inline std::vector<float> run(Model& model, const std::vector<int32_t>& ids, int64_t chunk) {
  const int64_t n = int64_t(ids.size()), vocab = model.config().vocab_size;
  KvCache cache = model.make_cache(n);
  std::vector<float> out(size_t(n * vocab));
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t rows = std::min(chunk, n - start);
    model.forward(ids.data() + start, rows, start, cache, LogitRows::All, out.data() + start * vocab);
  }
  return out;
}

inline std::string test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

}  // namespace brisk::golden
