// brisk optimize's recipe writer (optimize/recipe_writer.h) on a golden fixture: a group written
// alone in its candidate form moves the model's next-token distributions as much as it did when
// scored (the KL the solver trusted is the folder's), low-rank groups included; and a recipe that
// mixes factored and quantized groups writes a folder that loads and runs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "backends/cpu/cpu_backend.h"
#include "core/splitmix64.h"
#include "formats/json_file.h"
#include "formats/model_folder.h"
#include "formats/weight_store.h"
#include "golden_fixture.h"
#include "models/model.h"
#include "optimize/recipe_writer.h"

namespace brisk::recipe {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kWindow = 16;

// Mean KL(p || q) over the rows of two [rows, vocab] logit tables.
double mean_kl(const std::vector<float>& p_logits, const std::vector<float>& q_logits, int64_t vocab) {
  const int64_t rows = int64_t(p_logits.size()) / vocab;
  auto log_softmax = [&](const float* x, std::vector<double>& out) {
    double max = x[0], sum = 0;
    for (int64_t v = 0; v < vocab; ++v) max = std::max(max, double(x[v]));
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(double(x[v]) - max);
    out.resize(size_t(vocab));
    for (int64_t v = 0; v < vocab; ++v) out[size_t(v)] = double(x[v]) - max - std::log(sum);
  };
  double total = 0;
  std::vector<double> p, q;
  for (int64_t r = 0; r < rows; ++r) {
    log_softmax(p_logits.data() + r * vocab, p);
    log_softmax(q_logits.data() + r * vocab, q);
    for (int64_t v = 0; v < vocab; ++v) total += std::exp(p[size_t(v)]) * (p[size_t(v)] - q[size_t(v)]);
  }
  return total / double(rows);
}

class RecipeWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("brisk_recipe_writer_" + std::to_string(::getpid()));
    SplitMix64 rng{11};
    for (int i = 0; i < 2 * kWindow; ++i) tokens_.push_back(int32_t(rng.next() % 320));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The model's logits over the scored windows (each from position 0, as scoring runs them).
  std::vector<float> logits(const fs::path& folder) {
    CpuBackend cpu(1);
    auto model = load_model(folder, cpu);
    EXPECT_TRUE(model.ok()) << folder << ": " << model.error().message;
    if (!model.ok()) return {};
    std::vector<float> out;
    for (size_t w = 0; w < tokens_.size(); w += kWindow) {
      const std::vector<int32_t> window(tokens_.begin() + long(w), tokens_.begin() + long(w + kWindow));
      const std::vector<float> l = golden::run(*model.value(), window, kWindow);
      out.insert(out.end(), l.begin(), l.end());
    }
    return out;
  }

  const fs::path source_ = golden::kDir + "llama-gqa-bf16";
  fs::path dir_;
  std::vector<int32_t> tokens_;
};

TEST_F(RecipeWriterTest, GroupsAreWrittenAsScored) {
  auto space = search_space("w8,lr40");
  ASSERT_TRUE(space.ok()) << space.error().message;
  const std::vector<Candidate>* candidates = &space->candidates;
  ASSERT_EQ(candidates->size(), 3u);  // keep, w8, lr40
  SensitivityOptions so;
  so.window = kWindow;
  so.tokens = int64_t(tokens_.size());
  BackendOptions where;
  where.threads = 1;
  auto sens = measure_sensitivity(source_, tokens_, *candidates, so, where);
  ASSERT_TRUE(sens.ok()) << sens.error().message;
  const Sensitivity& s = sens.value();
  const std::vector<float> base = logits(source_);
  const int64_t vocab = 320, G = int64_t(s.groups.size());
  ASSERT_EQ(int64_t(base.size()), int64_t(tokens_.size()) * vocab);

  // One group at a time in each candidate form, written and measured against its score.
  int checked_low_rank = 0;
  for (int64_t g = 0; g < G; ++g)
    for (int c = 1; c < 3; ++c) {
      if (!s.kl[size_t(g)][size_t(c)]) continue;  // lr40 does not hold the head
      std::vector<int> choice(size_t(G), 0);
      choice[size_t(g)] = c;
      const fs::path out = dir_ / ("g" + std::to_string(g) + "-" + std::to_string(c));
      ASSERT_TRUE(write_recipe(source_, out, s, *candidates, choice, 1).ok());
      const double written = mean_kl(base, logits(out), vocab), scored = *s.kl[size_t(g)][size_t(c)];
      EXPECT_GT(scored, 0) << s.groups[size_t(g)].label();
      EXPECT_NEAR(written, scored, 0.01 * scored + 2e-7) << s.groups[size_t(g)].label() << " " << (*candidates)[size_t(c)].name;
      checked_low_rank += c == 2;
    }
  EXPECT_EQ(checked_low_rank, G - 1);  // every layer group, not the head

  // Mixed: layer groups alternate lr40 and w8, the head w8.
  std::vector<int> mixed(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; ++g) mixed[size_t(g)] = s.kl[size_t(g)][2] && g % 2 == 0 ? 2 : 1;
  const fs::path out = dir_ / "mixed";
  ASSERT_TRUE(write_recipe(source_, out, s, *candidates, mixed, 1).ok());
  EXPECT_FALSE(fs::exists(folder_beside(out, ".factored")));  // its scratch is gone
  auto config = read_json_file(out / "config.json");
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(config->contains("brisk_low_rank"));
  EXPECT_TRUE(config->contains("quantization_config"));
  auto store = WeightStore::open_dir(out);
  ASSERT_TRUE(store.ok());
  int64_t factors = 0, quantized = 0;
  for (const auto& [name, stored] : store->all()) {
    factors += name.find(".0.weight") != std::string::npos && stored.tensor.dtype == DType::BF16;
    quantized += stored.tensor.dtype == DType::I8 || stored.tensor.dtype == DType::I32;
  }
  EXPECT_GT(factors, 0);
  EXPECT_GT(quantized, 0);
  const double kl = mean_kl(base, logits(out), vocab);
  double predicted = 0;
  for (int64_t g = 0; g < G; ++g) predicted += *s.kl[size_t(g)][size_t(mixed[size_t(g)])];
  EXPECT_GT(kl, 0.3 * predicted);
  EXPECT_LT(kl, 3 * predicted);
}

// AWQ on a model whose widths hold 4-bit groups of 128 (the bundled sotu-tiny): offered where the
// scales fold into a norm (q/k/v, gate/up), each such group written alone -- codes and the folded
// norm -- moves the distributions as scored, and its damage is below plain RTN's.
TEST_F(RecipeWriterTest, AwqGroupsAreWrittenAsScoredWithTheirNorms) {
  const fs::path tiny = fs::path(BRISK_SOURCE_DIR) / "models" / "sotu-tiny";
  auto space = search_space("w4,w4-awq");
  ASSERT_TRUE(space.ok()) << space.error().message;
  const std::vector<Candidate>& candidates = space->candidates;  // keep, w4, w4-awq
  ASSERT_EQ(candidates.size(), 3u);
  SensitivityOptions so;
  so.window = kWindow;
  so.tokens = int64_t(tokens_.size());
  BackendOptions where;
  where.threads = 1;
  auto sens = measure_sensitivity(tiny, tokens_, candidates, so, where);
  ASSERT_TRUE(sens.ok()) << sens.error().message;
  const Sensitivity& s = sens.value();
  const std::vector<float> base = logits(tiny);
  const int64_t vocab = int64_t(base.size()) / int64_t(tokens_.size()), G = int64_t(s.groups.size());
  double awq_total = 0, rtn_total = 0;
  int written = 0;
  for (int64_t g = 0; g < G; ++g) {
    const SearchGroup& group = s.groups[size_t(g)];
    const bool norm_fed = group.kind == LinearGroup::AttnIn || group.kind == LinearGroup::MlpIn;
    ASSERT_EQ(s.kl[size_t(g)][2].has_value(), norm_fed) << group.label();
    ASSERT_EQ(group.norm_fold.has_value(), norm_fed) << group.label();
    if (!norm_fed) continue;
    awq_total += *s.kl[size_t(g)][2];
    rtn_total += *s.kl[size_t(g)][1];
    std::vector<int> choice(size_t(G), 0);
    choice[size_t(g)] = 2;
    const fs::path out = dir_ / ("awq" + std::to_string(g));
    ASSERT_TRUE(write_recipe(tiny, out, s, candidates, choice, 1).ok());
    const double kl = mean_kl(base, logits(out), vocab), scored = *s.kl[size_t(g)][2];
    EXPECT_GT(scored, 0) << group.label();
    EXPECT_NEAR(kl, scored, 0.01 * scored + 2e-7) << group.label();
    // The norm in the folder is the folded one, not the checkpoint's.
    auto store = WeightStore::open_dir(out);
    ASSERT_TRUE(store.ok());
    const std::string& norm = group.norm_fold->fold_weight;
    const StoredTensor* stored = store->find(norm);
    ASSERT_NE(stored, nullptr) << norm;
    EXPECT_EQ(stored->tensor.dtype, DType::F32) << norm;
    EXPECT_EQ(s.folded.at(norm).at("w4-awq").size(), size_t(stored->tensor.numel()));
    ++written;
  }
  EXPECT_EQ(written, 2 * (G / 4));  // attn_in and mlp_in of every layer (the head is tied)
  EXPECT_LT(awq_total, rtn_total);
}

}  // namespace
}  // namespace brisk::recipe
