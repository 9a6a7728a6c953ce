// `brisk train`'s run (train/training_run.h) on the shared Qwen2 model: a short run lowers the
// loss and writes a folder the engine loads; a run stopped and resumed from its checkpoint ends
// with exactly the weights of the same run made in one go; bad options are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "backends/cpu/cpu_backend.h"
#include "compress/prune.h"
#include "models/model.h"
#include "train/training_run.h"

namespace brisk::train {
namespace {

namespace fs = std::filesystem;
const fs::path kShared(BRISK_SHARED_DIR);

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TrainOptions small_run(const fs::path& out, int64_t steps) {
  TrainOptions o;
  o.model = kShared / "models" / "sotu-qwen2";
  o.data = {kShared / "data" / "text" / "sotu-valid.txt"};
  o.eval = kShared / "data" / "text" / "sotu-test.txt";
  o.eval_ctx = 64;
  o.eval_windows = 2;
  o.out = out;
  o.steps = steps;
  o.window = 24;
  o.batch_windows = 2;
  o.accumulation = 2;
  o.schedule = {1e-3, 1e-4, 1, 4};
  o.seed = 5;
  o.threads = 2;
  return o;
}

class TrainingRun : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("brisk_training_run_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TrainingRun, LowersTheLossAndWritesALoadableModel) {
  const fs::path out = dir_ / "straight";
  auto report = run_training(small_run(out, 4));
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report.value().steps, 4);
  EXPECT_EQ(report.value().tokens, 4 * 2 * 2 * 24);
  EXPECT_LT(report.value().final_loss, report.value().initial_loss);
  ASSERT_TRUE(report.value().eval_ppl.has_value());
  EXPECT_GT(*report.value().eval_ppl, 1.0);
  CpuBackend backend(1);
  auto model = load_model(out, backend);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(checkpoint_path(out)));
}

TEST_F(TrainingRun, ResumedRunEqualsTheStraightOneBitForBit) {
  const fs::path straight = dir_ / "straight", resumed = dir_ / "resumed";
  ASSERT_TRUE(run_training(small_run(straight, 4)).ok());
  ASSERT_TRUE(run_training(small_run(resumed, 2)).ok());
  TrainOptions more = small_run(resumed, 4);
  more.resume = true;
  auto report = run_training(more);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report.value().steps, 2);  // steps 3 and 4
  EXPECT_EQ(file_bytes(straight / "model.safetensors"), file_bytes(resumed / "model.safetensors"));
  EXPECT_EQ(file_bytes(checkpoint_path(straight)), file_bytes(checkpoint_path(resumed)));
}

// --qat w8 (sotu-qwen2's 704-wide MLP takes no 128-value groups): the run computes with fake-quantized layers and writes the quantized model (which
// loads, with a quantization_config) and the fp32 weights it came from in float/.
TEST_F(TrainingRun, QatWritesAQuantizedModel) {
  TrainOptions o = small_run(dir_ / "qat", 2);
  o.accumulation = 1;
  QuantSpec spec;
  spec.scheme = QuantScheme::W8;
  o.qat = QatRecipe{spec, {}};
  auto report = run_training(o);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(fs::exists(o.out / "float" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(o.out / ".quantized.partial"));
  const std::string config = file_bytes(o.out / "config.json");
  EXPECT_NE(config.find("quantization_config"), std::string::npos);
  CpuBackend backend(1);
  auto model = load_model(o.out, backend);
  ASSERT_TRUE(model.ok()) << model.error().message;
  bool quantized = false;
  model.value()->visit_tensors([&](const TensorSpec& t, Tensor& slot) {
    if (t.role == Role::MlpDown && !slot.empty()) quantized = slot.dtype == DType::Q8;
  });
  EXPECT_TRUE(quantized);
}

// A per-module QAT recipe (brisk optimize --recover): the module it keeps trains and is written in
// float, the others by the recipe's spec.
TEST_F(TrainingRun, QatRecipeKeepsTheModulesItNames) {
  TrainOptions o = small_run(dir_ / "qat-recipe", 1);
  QuantSpec w8;
  w8.scheme = QuantScheme::W8;
  o.qat = QatRecipe{w8, {{"model.layers.0.mlp.down_proj", std::nullopt}}};
  EXPECT_EQ(o.qat->spec_of("model.layers.0.mlp.down_proj.weight"), std::nullopt);
  EXPECT_EQ(o.qat->spec_of("model.layers.1.mlp.down_proj.weight")->scheme, QuantScheme::W8);
  auto report = run_training(o);
  ASSERT_TRUE(report.ok()) << report.error().message;
  CpuBackend backend(1);
  auto model = load_model(o.out, backend);
  ASSERT_TRUE(model.ok()) << model.error().message;
  std::map<int64_t, DType> down;
  model.value()->visit_tensors([&](const TensorSpec& t, Tensor& slot) {
    if (t.role == Role::MlpDown && !slot.empty()) down[t.layer] = slot.dtype;
  });
  ASSERT_GE(down.size(), 2u);
  EXPECT_FALSE(is_block_dtype(down.at(0)));
  EXPECT_EQ(down.at(1), DType::Q8);
}

TEST_F(TrainingRun, RefusesWhatItCannotDo) {
  TrainOptions o = small_run(dir_ / "x", 2);
  fs::create_directories(o.out);
  std::ofstream(o.out / "keep.txt") << "someone's file";
  auto busy = run_training(o);
  ASSERT_FALSE(busy.ok());
  EXPECT_NE(busy.error().message.find("not empty"), std::string::npos) << busy.error().message;
  EXPECT_TRUE(fs::exists(o.out / "keep.txt"));

  o.out = dir_ / "y";
  o.resume = true;
  auto nothing = run_training(o);
  ASSERT_FALSE(nothing.ok());
  EXPECT_NE(nothing.error().message.find("does not exist"), std::string::npos) << nothing.error().message;

  o = small_run(dir_ / "z", 2);
  o.model = kShared / "models" / "sotu-gpt2";
  o.window = 2000;  // past its 1024 learned positions
  auto too_long = run_training(o);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message.find("learned positions"), std::string::npos) << too_long.error().message;
  EXPECT_FALSE(fs::exists(o.out / "model.safetensors"));
}

// `brisk train --shape`: a new model of the shape, the base's config and tokenizer otherwise, written
// to <out>/initial_model and trained from there (GPT-2's keys: n_layer, n_embd, n_head, n_inner).
TEST_F(TrainingRun, NewShapeTrainsAFreshModel) {
  TrainOptions o = small_run(dir_ / "fresh", 3);
  o.model = kShared / "models" / "sotu-gpt2";
  StudentShape shape;
  shape.layers = 2, shape.hidden = 96, shape.heads = 4, shape.ffn = 200, shape.arch = "gpt2";
  o.new_shape = shape;
  auto report = run_training(o);
  ASSERT_TRUE(report.ok()) << report.error().message;
  CpuBackend backend(1);
  auto model = load_model(o.out, backend);
  ASSERT_TRUE(model.ok()) << model.error().message;
  const ModelConfig& c = model.value()->config();
  EXPECT_EQ(c.model_type, "gpt2");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.hidden_size, 96);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.intermediate_size, 200);
  EXPECT_TRUE(fs::exists(initial_model_path(o.out) / "tokenizer.json"));

  // The family comes from the base; a gpt2 has no grouped kv heads.
  TrainOptions wrong = small_run(dir_ / "wrong", 1);
  shape.arch = "llama";
  wrong.model = kShared / "models" / "sotu-gpt2";
  wrong.new_shape = shape;
  auto refused = run_training(wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("arch=llama"), std::string::npos) << refused.error().message;
  shape.arch = "";
  shape.kv_heads = 2;
  wrong.new_shape = shape;
  refused = run_training(wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("kv heads"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(fs::exists(initial_model_path(wrong.out) / "model.safetensors"));
}

// --keep-sparsity: fine-tuning a 2:4-pruned model leaves every pruned weight at zero while the
// others move; without it the zeros fill in. A dense model is refused.
TEST_F(TrainingRun, KeepSparsityHoldsThePrunedZeros) {
  calib::PruneOptions prune;
  prune.pattern = calib::parse_sparsity_pattern("2:4").value();
  auto pruned = calib::prune_with_calibration(kShared / "models" / "sotu-qwen2", {}, prune);
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  const fs::path sparse = dir_ / "sparse";
  ASSERT_TRUE(calib::write_pruned_model(kShared / "models" / "sotu-qwen2", sparse, pruned.value()).ok());
  auto zeros_after = [&](bool keep) {
    TrainOptions o = small_run(dir_ / (keep ? "kept" : "free"), 2);
    o.model = sparse;
    o.keep_sparsity = keep;
    o.eval.reset();
    auto report = run_training(o);
    EXPECT_TRUE(report.ok()) << report.error().message;
    CpuBackend backend(1);
    auto model = load_model(o.out, backend);
    EXPECT_TRUE(model.ok());
    auto weights = calib::FloatWeights::copy_from(*model.value());
    int64_t zeros = 0, changed = 0;
    for (const auto& [name, s] : pruned->sparsity) {
      const std::vector<float>& before = pruned->weights.at(name);
      const std::vector<float>& after = weights.at(name);
      for (size_t i = 0; i < before.size(); ++i) {
        if (before[i] == 0.0f) zeros += after[i] == 0.0f;
        else changed += after[i] != before[i];
      }
    }
    return std::pair{zeros, changed};
  };
  int64_t pruned_zeros = 0;
  for (const auto& [name, s] : pruned->sparsity) pruned_zeros += int64_t(s * double(pruned->weights.at(name).size()) + 0.5);
  const auto [kept_zeros, kept_changed] = zeros_after(true);
  EXPECT_EQ(kept_zeros, pruned_zeros);
  EXPECT_GT(kept_changed, pruned_zeros / 2);  // the other weights did train
  EXPECT_LT(zeros_after(false).first, pruned_zeros / 100);

  TrainOptions dense = small_run(dir_ / "dense", 1);
  dense.keep_sparsity = true;
  auto refused = run_training(dense);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("prune it first"), std::string::npos) << refused.error().message;
}

// GPT-2 (Conv1D matrices stored [in, out]): the written folder loads, and its weights are the run's
// final weights bit for bit (the transposes on the way in and out undo each other).
TEST_F(TrainingRun, Gpt2RunWritesItsWeightsInTheCheckpointLayout) {
  TrainOptions o = small_run(dir_ / "gpt2", 2);
  o.model = kShared / "models" / "sotu-gpt2";
  auto report = run_training(o);
  ASSERT_TRUE(report.ok()) << report.error().message;
  auto saved = load_checkpoint(checkpoint_path(o.out));
  ASSERT_TRUE(saved.ok()) << saved.error().message;
  CpuBackend backend(1);
  auto model = load_model(o.out, backend);
  ASSERT_TRUE(model.ok()) << model.error().message;
  auto reloaded = DecoderTrainer::from_model(*model.value(), 1);
  ASSERT_TRUE(reloaded.ok()) << reloaded.error().message;
  std::map<std::string, const TrainState::Parameter*> by_name;
  for (const TrainState::Parameter& p : saved.value().parameters) by_name[p.name] = &p;
  int transposed = 0;
  for (const TrainState::Parameter& p : reloaded.value()->parameters()) {
    ASSERT_TRUE(by_name.count(p.name)) << p.name;
    EXPECT_EQ(p.shape, by_name[p.name]->shape) << p.name;
    EXPECT_TRUE(p.value == by_name[p.name]->value) << p.name;
    transposed += p.stored_transposed;
  }
  EXPECT_EQ(transposed, 4 * int(model.value()->config().n_layers));  // c_attn, c_proj, c_fc, mlp.c_proj
}

}  // namespace
}  // namespace brisk::train
