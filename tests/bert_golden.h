// The BERT fixtures (tests/fixtures/golden/bert and bert-cls, scripts/golden/make_family_fixtures.py):
// transformers' BertModel last hidden states, sentence-transformers' pooled embeddings (mean +
// normalize as the folder's modules say; CLS) and BertForSequenceClassification logits, for four
// sentences tokenized by the folder's WordPiece tokenizer. check_bert_golden runs them on one
// device (the CPU test and the CUDA runtime test share it). Skips when the fixture is absent.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "runtime/embedding.h"

namespace brisk::bert_golden {

inline const std::filesystem::path kDir = std::filesystem::path(BRISK_FIXTURES_DIR) / "golden";
constexpr int kSentences = 4;

using Arrays = std::map<std::string, std::vector<double>>;

inline Arrays read_arrays(const std::filesystem::path& file) {
  Arrays out;
  auto opened = SafetensorsFile::open(file);
  EXPECT_TRUE(opened.ok()) << opened.error().message;
  if (!opened.ok()) return out;
  for (const auto& t : opened.value().tensors()) {
    std::vector<double>& v = out[t.name];
    for (int64_t i = 0; i < t.tensor.numel(); ++i)
      v.push_back(t.tensor.dtype == DType::I64 ? double(t.tensor.as<int64_t>()[i]) : double(t.tensor.as<float>()[i]));
  }
  return out;
}

inline double cosine(const std::vector<float>& a, const std::vector<double>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    dot += a[i] * b[i];
    na += double(a[i]) * a[i];
    nb += b[i] * b[i];
  }
  return dot / std::sqrt(na * nb);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  double worst = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < b.size() && i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

inline std::unique_ptr<Engine> open(const std::filesystem::path& dir, const std::string& device) {
  EngineOptions options;
  options.model_dir = dir;
  options.backend.device = device;
  options.backend.threads = 2;
  auto engine = Engine::open(options);
  EXPECT_TRUE(engine.ok()) << engine.error().message;
  return engine.ok() ? std::move(engine.value()) : nullptr;
}

inline std::vector<int32_t> ids_of(const Arrays& a, int i) {
  std::vector<int32_t> ids;
  for (double v : a.at("input_ids." + std::to_string(i))) ids.push_back(int32_t(v));
  return ids;
}

// Tokens, pooled embeddings (cosine >= 0.99999 and 1e-5 absolute, as sentence-transformers'
// float32 output allows) and classifier logits (1e-4 absolute) on `device`.
inline void check_bert_golden(const std::string& device) {
  const auto encoder_dir = kDir / "bert", classifier_dir = kDir / "bert-cls";
  if (!std::filesystem::exists(encoder_dir / "embeddings.safetensors") ||
      !std::filesystem::exists(classifier_dir / "classification.safetensors"))
    GTEST_SKIP() << "no BERT fixture under " << kDir;
  const Arrays want = read_arrays(encoder_dir / "embeddings.safetensors");
  auto engine = open(encoder_dir, device);
  ASSERT_TRUE(engine);
  auto pooling = read_pooling_config(encoder_dir);
  ASSERT_TRUE(pooling.ok()) << pooling.error().message;
  EXPECT_EQ(pooling->pooling, Pooling::Mean);  // the fixture saved mean pooling + Normalize
  EXPECT_TRUE(pooling->normalize);
  const std::vector<std::string> sentences = {"The State of the Union is strong.",
                                              "Congress must act on the budget this year.", "Café déjà vu 中文",
                                              "We the people"};
  ASSERT_EQ(int(sentences.size()), kSentences);
  double min_cosine = 1, worst_mean = 0, worst_logit = 0;
  for (int i = 0; i < kSentences; ++i) {
    const std::string at = " sentence " + std::to_string(i) + " on " + device;
    const std::vector<int32_t> ids = ids_of(want, i);
    auto tokens = encoder_tokens(*engine, sentences[size_t(i)]);
    ASSERT_TRUE(tokens.ok()) << tokens.error().message;
    EXPECT_EQ(*tokens, ids) << at;
    auto mean = embed(*engine, ids, *pooling);
    ASSERT_TRUE(mean.ok()) << mean.error().message;
    const auto& mean_want = want.at("mean_normalized." + std::to_string(i));
    min_cosine = std::min(min_cosine, cosine(mean->vector, mean_want));
    worst_mean = std::max(worst_mean, max_abs_diff(mean->vector, mean_want));
    EXPECT_GE(cosine(mean->vector, mean_want), 0.99999) << at;
    EXPECT_LT(max_abs_diff(mean->vector, mean_want), 1e-5) << at;
    auto cls = embed(*engine, ids, {Pooling::Cls, false});
    ASSERT_TRUE(cls.ok()) << cls.error().message;
    EXPECT_LT(max_abs_diff(cls->vector, want.at("cls." + std::to_string(i))), 1e-4) << at;
    // The last row of transformers' last_hidden_state: every position's output, not only the pooled.
    auto last = embed(*engine, ids, {Pooling::Last, false});
    ASSERT_TRUE(last.ok()) << last.error().message;
    const auto& hidden = want.at("hidden." + std::to_string(i));
    const size_t width = last->vector.size();
    ASSERT_EQ(hidden.size(), width * ids.size());
    EXPECT_LT(max_abs_diff(last->vector, std::vector<double>(hidden.end() - long(width), hidden.end())), 1e-4) << at;
  }

  const Arrays logits = read_arrays(classifier_dir / "classification.safetensors");
  auto classifier = open(classifier_dir, device);
  ASSERT_TRUE(classifier);
  for (int i = 0; i < kSentences; ++i) {
    auto c = classify(*classifier, ids_of(logits, i));
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->labels, (std::vector<std::string>{"negative", "neutral", "positive"}));
    worst_logit = std::max(worst_logit, max_abs_diff(c->logits, logits.at("logits." + std::to_string(i))));
    EXPECT_LT(max_abs_diff(c->logits, logits.at("logits." + std::to_string(i))), 1e-4)
        << "sentence " << i << " on " << device;
  }
  std::printf("[bert] %s: min cosine %.9f, max |mean embedding diff| %.2e, max |logit diff| %.2e\n", device.c_str(),
              min_cosine, worst_mean, worst_logit);
}

}  // namespace brisk::bert_golden
