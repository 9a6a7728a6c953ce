// The CPU training graph (train/decoder_trainer.h) on the shared models (Llama, Qwen2, GPT-2): its logits equal the
// engine's, its gradients equal finite differences of its loss for every parameter tensor, and
// AdamW steps on it lower the loss.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "golden_fixture.h"
#include "train/adamw.h"
#include "train/decoder_trainer.h"

namespace brisk::train {
namespace {

const std::filesystem::path kModels = std::filesystem::path(BRISK_SHARED_DIR) / "models";

struct Loaded {
  CpuBackend backend{2};
  std::unique_ptr<Model> model;
  std::unique_ptr<DecoderTrainer> trainer;
};

std::unique_ptr<Loaded> load(const std::string& name) {
  auto l = std::make_unique<Loaded>();
  ModelOptions options;
  options.max_rows = 64;
  auto model = load_model(kModels / name, l->backend, options);
  EXPECT_TRUE(model.ok()) << model.error().message;
  if (!model.ok()) return nullptr;
  l->model = std::move(model.value());
  auto trainer = DecoderTrainer::from_model(*l->model, 2);
  EXPECT_TRUE(trainer.ok()) << trainer.error().message;
  if (!trainer.ok()) return nullptr;
  l->trainer = std::move(trainer.value());
  return l;
}

std::vector<int32_t> random_tokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = int32_t(rng() % uint32_t(vocab - 100)) + 100;
  return ids;
}

// Two windows of 12 tokens: the second at positions 0.. again, as the engine sees a fresh sequence.
TEST(DecoderTrainer, LogitsEqualTheEngines) {
  for (const char* name : {"sotu-llama", "sotu-qwen2", "sotu-gpt2"}) {
    auto l = load(name);
    ASSERT_TRUE(l);
    const int64_t window = 12, vocab = l->model->config().vocab_size;
    const std::vector<int32_t> tokens = random_tokens(2 * (window + 1), int32_t(vocab), 3);
    const std::vector<float> got = l->trainer->logits(tokens, 2, window);
    for (int64_t w = 0; w < 2; ++w) {
      const std::vector<int32_t> ids(tokens.begin() + w * (window + 1), tokens.begin() + w * (window + 1) + window);
      const std::vector<float> want = golden::run(*l->model, ids, window);
      const std::vector<float> part(got.begin() + w * window * vocab, got.begin() + (w + 1) * window * vocab);
      EXPECT_LT(golden::relative_l2(part, want), 1e-5) << name << " window " << w;
    }
  }
}

// For each parameter tensor of the first and last layer and outside the layers, the entry with the
// largest gradient against a central difference of the loss (fp32 forward: a step of 1e-2 keeps
// rounding noise ~1e-5 of the loss away from it).
void expect_gradients_match_finite_differences(const std::string& model) {
  auto l = load(model);
  ASSERT_TRUE(l);
  DecoderTrainer& t = *l->trainer;
  const int64_t window = 6, windows = 2, layers = t.config().n_layers;
  const std::vector<int32_t> tokens = random_tokens(size_t(windows * (window + 1)), int32_t(t.config().vocab_size), 7);
  t.zero_gradients();
  t.cross_entropy_step(tokens, windows, window);
  auto& params = t.parameters();
  auto& grads = t.gradients();
  int checked = 0;
  for (size_t p = 0; p < params.size(); ++p) {
    const std::string& name = params[p].name;
    bool middle_layer = false;  // the first and last layer cover every kind
    for (int64_t i = 1; i + 1 < layers; ++i) middle_layer |= name.find("." + std::to_string(i) + ".") != std::string::npos;
    if (middle_layer) continue;
    const std::vector<float>& g = grads[p];
    const size_t i = size_t(std::max_element(g.begin(), g.end(), [](float a, float b) {
                              return std::fabs(a) < std::fabs(b);
                            }) - g.begin());
    float& w = params[p].value[i];
    const float saved = w, h = 1e-2f;
    w = saved + h;
    const double up = t.cross_entropy(tokens, windows, window);
    w = saved - h;
    const double down = t.cross_entropy(tokens, windows, window);
    w = saved;
    const double fd = (up - down) / (2.0 * double(h));
    EXPECT_NEAR(fd, g[i], 3e-2 * std::fabs(g[i]) + 3e-4) << model << " " << name << "[" << i << "]";
    ++checked;
  }
  EXPECT_GE(checked, 20) << model;
}

TEST(DecoderTrainer, GradientsMatchFiniteDifferences) {
  expect_gradients_match_finite_differences("sotu-qwen2");  // tied head, q/k/v biases
  expect_gradients_match_finite_differences("sotu-gpt2");   // LayerNorm, learned positions, fused q/k/v, GELU
}

// Activation checkpointing changes memory, not arithmetic: the same gradients bit for bit.
TEST(DecoderTrainer, RecomputedLayersGiveTheSameGradients) {
  for (const char* name : {"sotu-llama", "sotu-gpt2"}) {
    auto l = load(name);
    ASSERT_TRUE(l);
    DecoderTrainer& t = *l->trainer;
    const int64_t window = 10, windows = 3;
    const std::vector<int32_t> tokens = random_tokens(size_t(windows * (window + 1)), int32_t(t.config().vocab_size), 5);
    t.zero_gradients();
    const double kept = t.cross_entropy_step(tokens, windows, window);
    const std::vector<std::vector<float>> want = t.gradients();
    t.set_activation_memory(ActivationMemory::LayerInputs);
    t.zero_gradients();
    const double recomputed = t.cross_entropy_step(tokens, windows, window);
    EXPECT_EQ(kept, recomputed) << name;
    for (size_t p = 0; p < want.size(); ++p) EXPECT_TRUE(t.gradients()[p] == want[p]) << name << " " << t.parameters()[p].name;
  }
}

// --l1 adds lambda * sign(w) to the layers' linear weight gradients and nothing elsewhere.
TEST(DecoderTrainer, L1AddsTheSubgradientToTheLayersMatrices) {
  auto l = load("sotu-qwen2");
  ASSERT_TRUE(l);
  DecoderTrainer& t = *l->trainer;
  const std::vector<int32_t> tokens = random_tokens(2 * 9, int32_t(t.config().vocab_size), 13);
  t.zero_gradients();
  t.cross_entropy_step(tokens, 2, 8);
  const std::vector<std::vector<float>> before = t.gradients();
  t.add_l1_gradient(0.25);
  int matrices = 0;
  for (size_t p = 0; p < before.size(); ++p) {
    const TrainState::Parameter& param = t.parameters()[p];
    const bool layer_matrix = param.shape.size() == 2 && param.name.find(".layers.") != std::string::npos;
    matrices += layer_matrix;
    for (size_t i = 0; i < before[p].size(); ++i) {
      const float w = param.value[i];
      const float want = before[p][i] + (layer_matrix ? (w > 0 ? 0.25f : w < 0 ? -0.25f : 0.0f) : 0.0f);
      ASSERT_EQ(t.gradients()[p][i], want) << param.name << "[" << i << "]";
    }
  }
  EXPECT_EQ(matrices, 7 * int(t.config().n_layers));
}

// AdamW on one batch: the loss falls (the graph and the optimizer point the same way).
TEST(DecoderTrainer, AdamWStepsLowerTheLoss) {
  for (const char* name : {"sotu-qwen2", "sotu-gpt2"}) {
    auto l = load(name);
    ASSERT_TRUE(l);
    DecoderTrainer& t = *l->trainer;
    const int64_t window = 16, windows = 2;
    const std::vector<int32_t> tokens = random_tokens(size_t(windows * (window + 1)), int32_t(t.config().vocab_size), 11);
    const double before = t.cross_entropy(tokens, windows, window);
    AdamW opt({0.9, 0.999, 1e-8, 0.0});
    std::vector<AdamWState> states(t.parameters().size());
    for (int64_t step = 1; step <= 5; ++step) {
      t.zero_gradients();
      t.cross_entropy_step(tokens, windows, window);
      for (size_t p = 0; p < states.size(); ++p)
        opt.update(t.parameters()[p].value.data(), t.gradients()[p].data(), int64_t(t.gradients()[p].size()),
                   states[p], step, 1e-3);
    }
    const double after = t.cross_entropy(tokens, windows, window);
    EXPECT_LT(after, before * 0.9) << name << ": " << before << " -> " << after;
  }
}

}  // namespace
}  // namespace brisk::train
