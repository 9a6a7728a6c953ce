// Pruning (compress/prune.h): each method's mask on random matrices (counts, N:M groups, ties,
// seeds), SparseGPT's compensation against the layer output error, and whole models pruned,
// written in their dtype and layout, and loaded back.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <random>
#include <unistd.h>

#include "backends/cpu/cpu_backend.h"
#include "compress/calib_linalg.h"
#include "compress/gptq.h"
#include "compress/prune.h"
#include "compress/prune_structured.h"
#include "calib_inputs.h"
#include "golden_fixture.h"
#include "formats/json_file.h"
#include "formats/safetensors.h"
#include "formats/weight_store.h"
#include "models/model.h"

namespace brisk::calib {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(BRISK_SHARED_DIR) / "models";


int64_t zeros(const std::vector<float>& w) { return std::count(w.begin(), w.end(), 0.0f); }

PruneOptions options(PruneMethod method, double sparsity) {
  PruneOptions o;
  o.method = method;
  o.sparsity = sparsity;
  return o;
}

TEST(Prune, MagnitudeZeroesTheSmallestOfTheMatrix) {
  const int64_t rows = 37, cols = 53;
  std::vector<float> w = random_matrix(rows, cols, 1);
  const std::vector<float> before = w;
  ASSERT_TRUE(prune_matrix(w.data(), rows, cols, nullptr, options(PruneMethod::Magnitude, 0.3), "m").ok());
  EXPECT_EQ(zeros(w), int64_t(std::floor(0.3 * rows * cols)));
  float largest_pruned = 0, smallest_kept = INFINITY;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] == 0) largest_pruned = std::max(largest_pruned, std::fabs(before[i]));
    else {
      smallest_kept = std::min(smallest_kept, std::fabs(before[i]));
      EXPECT_EQ(w[i], before[i]);  // kept weights unchanged
    }
  }
  EXPECT_LE(largest_pruned, smallest_kept);
}

TEST(Prune, PatternsKeepAtMostNOfEveryM) {
  const int64_t rows = 9, cols = 48;
  for (const char* text : {"2:4", "4:8", "1:4", "3:16"}) {
    auto pattern = parse_sparsity_pattern(text);
    ASSERT_TRUE(pattern.ok()) << text;
    const InputStats in = correlated_inputs(cols, 200, 3);
    for (PruneMethod method : {PruneMethod::Magnitude, PruneMethod::Random, PruneMethod::Wanda, PruneMethod::SparseGpt}) {
      std::vector<float> w = random_matrix(rows, cols, 2);
      PruneOptions o = options(method, 0);
      o.pattern = pattern.value();
      ASSERT_TRUE(prune_matrix(w.data(), rows, cols, &in, o, "p").ok()) << text << " " << prune_method_name(method);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < cols; g += o.pattern.group) {
          int64_t kept = 0;
          for (int64_t j = g; j < g + o.pattern.group; ++j) kept += w[size_t(r * cols + j)] != 0;
          EXPECT_EQ(kept, o.pattern.keep) << text << " " << prune_method_name(method) << " row " << r << " group " << g;
        }
    }
  }
  std::vector<float> w = random_matrix(4, 30, 2);
  PruneOptions o = options(PruneMethod::Magnitude, 0);
  o.pattern = parse_sparsity_pattern("2:4").value();
  const Status odd = prune_matrix(w.data(), 4, 30, nullptr, o, "layers.0.q");
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("layers.0.q"), std::string::npos) << odd.error().message;
  for (const std::string& bad : std::vector<std::string>{"", "2", "4:2", "0:4", "2:2", "2:4:8", "a:4", "2:99999", "-1:4", "2:65", ":", " 2:4",
                                 std::string(100000, '9') + ":4", "2:" + std::string(100000, '4')})
    EXPECT_FALSE(parse_sparsity_pattern(bad).ok()) << bad.substr(0, 20);
  EXPECT_FALSE(parse_structured_unit("").ok());
  EXPECT_FALSE(parse_structured_unit(std::string(100000, 'x')).ok());
}

TEST(Prune, WandaWeighsByInputNormPerRow) {
  const int64_t rows = 6, cols = 40;
  const InputStats in = correlated_inputs(cols, 300, 4);
  std::vector<float> w = random_matrix(rows, cols, 5);
  const std::vector<float> before = w;
  ASSERT_TRUE(prune_matrix(w.data(), rows, cols, &in, options(PruneMethod::Wanda, 0.5), "w").ok());
  for (int64_t r = 0; r < rows; ++r) {
    int64_t row_zeros = 0;
    double largest_pruned = 0, smallest_kept = INFINITY;
    for (int64_t j = 0; j < cols; ++j) {
      const double score = std::fabs(before[size_t(r * cols + j)]) * std::sqrt(in.sq_sum[size_t(j)]);
      if (w[size_t(r * cols + j)] == 0) ++row_zeros, largest_pruned = std::max(largest_pruned, score);
      else smallest_kept = std::min(smallest_kept, score);
    }
    EXPECT_EQ(row_zeros, cols / 2) << "row " << r;
    EXPECT_LE(largest_pruned, smallest_kept * (1 + 1e-6)) << "row " << r;
  }
  EXPECT_FALSE(prune_matrix(w.data(), rows, cols, nullptr, options(PruneMethod::Wanda, 0.5), "w").ok());
}

TEST(Prune, RandomIsSeeded) {
  const int64_t rows = 8, cols = 32;
  auto run = [&](uint64_t seed) {
    std::vector<float> w = random_matrix(rows, cols, 6);
    PruneOptions o = options(PruneMethod::Random, 0.5);
    o.seed = seed;
    EXPECT_TRUE(prune_matrix(w.data(), rows, cols, nullptr, o, "r").ok());
    return w;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));
  EXPECT_EQ(zeros(run(3)), rows * cols / 2);
}

// SparseGPT's point: the kept weights absorb what the zeros removed, so the layer's output error
// ||X (W - W')^T||^2 is well below what its own mask costs without the updates (and far below
// magnitude pruning's). Wanda, which sees the input norms, beats magnitude; at 2:4, where each
// group's choice is forced, SparseGPT's compensation beats Wanda too.
TEST(Prune, SparseGptCompensatesTheOutputError) {
  const int64_t rows = 24, cols = 64;
  const InputStats in = correlated_inputs(cols, 400, 7);
  const std::vector<float> h = to_float(in.xtx);
  const std::vector<float> w = random_matrix(rows, cols, 8);
  CpuBackend cpu(1);
  for (const char* pattern : {"", "2:4"}) {
    std::map<PruneMethod, double> error;
    std::vector<float> sparsegpt;
    for (PruneMethod method : {PruneMethod::Magnitude, PruneMethod::Wanda, PruneMethod::SparseGpt}) {
      std::vector<float> p = w;
      PruneOptions o = options(method, 0.5);
      if (*pattern) o.pattern = parse_sparsity_pattern(pattern).value();
      ASSERT_TRUE(prune_matrix(p.data(), rows, cols, &in, o, "s").ok());
      EXPECT_EQ(zeros(p), rows * cols / 2) << prune_method_name(method) << " " << pattern;
      error[method] = output_error(cpu, w.data(), p.data(), rows, cols, h);
      if (method == PruneMethod::SparseGpt) sparsegpt = p;
    }
    std::vector<float> mask_only = w;  // SparseGPT's zeros, the other weights as they were
    for (size_t i = 0; i < w.size(); ++i)
      if (sparsegpt[i] == 0) mask_only[i] = 0;
    const double uncompensated = output_error(cpu, w.data(), mask_only.data(), rows, cols, h);
    std::printf("[prune] pattern \"%s\": output error magnitude %.1f wanda %.1f sparsegpt %.1f (its mask alone %.1f)\n",
                pattern, error[PruneMethod::Magnitude], error[PruneMethod::Wanda], error[PruneMethod::SparseGpt],
                uncompensated);
    EXPECT_LT(error[PruneMethod::Wanda], error[PruneMethod::Magnitude]) << pattern;
    EXPECT_LT(error[PruneMethod::SparseGpt], 0.1 * error[PruneMethod::Magnitude]) << pattern;
    EXPECT_LT(error[PruneMethod::SparseGpt], 0.8 * uncompensated) << pattern;
    if (*pattern) {
      EXPECT_LT(error[PruneMethod::SparseGpt], error[PruneMethod::Wanda]) << pattern;
    }
  }
}

// Prune, then quantize: GPTQ on a 2:4 matrix keeps every zero (and so the pattern), and still
// lowers the output error below RTN's on the same pruned matrix.
TEST(Prune, GptqOnAPrunedMatrixKeepsItsZeros) {
  const int64_t rows = 16, cols = 256;
  const InputStats in = correlated_inputs(cols, 600, 9);
  std::vector<float> w = random_matrix(rows, cols, 10);
  PruneOptions o = options(PruneMethod::SparseGpt, 0);
  o.pattern = parse_sparsity_pattern("2:4").value();
  ASSERT_TRUE(prune_matrix(w.data(), rows, cols, &in, o, "g").ok());
  for (Symmetry symmetry : {Symmetry::Symmetric, Symmetry::Asymmetric}) {
    const QuantSpec spec{QuantScheme::W4, 128, symmetry};
    auto q = gptq(w.data(), rows, cols, in.xtx, spec);
    ASSERT_TRUE(q.ok()) << q.error().message;
    for (size_t i = 0; i < w.size(); ++i)
      if (w[i] == 0) {
        ASSERT_EQ(q->dequantized[i], 0.0f) << i;
      }
    const std::vector<float> h = to_float(in.xtx);
    CpuBackend cpu(1);
    const UnpackedMatrix rtn = quantize_rtn(w.data(), rows, cols, spec);
    EXPECT_LT(output_error(cpu, w.data(), q->dequantized.data(), rows, cols, h),
              output_error(cpu, w.data(), rtn.dequantized.data(), rows, cols, h));
  }
}

TEST(Prune, OptionsThatContradictEachOtherAreRefused) {
  PruneOptions o = options(PruneMethod::Wanda, 0.5);
  o.scope = PruneScope::Global;
  EXPECT_FALSE(check_prune_options(o).ok());
  o = options(PruneMethod::Magnitude, 1.0);
  EXPECT_FALSE(check_prune_options(o).ok());
  o = options(PruneMethod::Magnitude, -0.1);
  EXPECT_FALSE(check_prune_options(o).ok());
  EXPECT_FALSE(parse_prune_method("obs").ok());
}

class PruneModel : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fs::temp_directory_path() / ("brisk_prune_" + std::to_string(::getpid())); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Global magnitude 2:4 would be a contradiction; global unstructured counts over all matrices.
// The written folders load; their matrices carry the zeros in the checkpoint's own layout (GPT-2's
// Conv1D [in, out] transposed back: the N:M groups run along the inputs after loading) and dtype.
TEST_F(PruneModel, WrittenFoldersLoadWithTheirZeros) {
  for (const char* name : {"sotu-llama", "sotu-gpt2"}) {
    PruneOptions o = options(PruneMethod::Magnitude, 0);
    o.pattern = parse_sparsity_pattern("2:4").value();
    auto pruned = prune_with_calibration(kModels / name, {}, o);
    ASSERT_TRUE(pruned.ok()) << pruned.error().message;
    const fs::path out = dir_ / name;
    ASSERT_TRUE(write_pruned_model(kModels / name, out, pruned.value()).ok());
    CpuBackend backend(1);
    auto model = load_model(out, backend);
    ASSERT_TRUE(model.ok()) << model.error().message;
    auto reloaded = FloatWeights::copy_from(*model.value());
    int64_t checked = 0;
    for (const auto& [tensor, sparsity] : pruned->sparsity) {
      EXPECT_DOUBLE_EQ(sparsity, 0.5) << tensor;
      const std::vector<float>& w = reloaded.at(tensor);
      const int64_t rows = reloaded.rows(tensor), cols = reloaded.cols(tensor);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < cols; g += 4) {
          int64_t kept = 0;
          for (int64_t j = g; j < g + 4; ++j) kept += w[size_t(r * cols + j)] != 0;
          ASSERT_LE(kept, 2) << name << " " << tensor << " row " << r;
        }
      EXPECT_EQ(w, pruned->weights.at(tensor)) << tensor;  // bf16 values round-trip exactly
      ++checked;
    }
    EXPECT_GT(checked, 10) << name;
    auto store = WeightStore::open_dir(out);
    ASSERT_TRUE(store.ok());
    auto source = WeightStore::open_dir(kModels / name);
    ASSERT_TRUE(source.ok());
    for (const auto& [tensor, stored] : source->all()) {
      const StoredTensor* written = store->find(tensor);
      ASSERT_NE(written, nullptr) << tensor;
      EXPECT_EQ(written->tensor.dtype, stored.tensor.dtype) << tensor;
      EXPECT_EQ(written->tensor.shape, stored.tensor.shape) << tensor;
    }
  }
}

TEST_F(PruneModel, GlobalScopeCountsOverAllMatrices) {
  PruneOptions o = options(PruneMethod::Magnitude, 0.6);
  o.scope = PruneScope::Global;
  auto pruned = prune_with_calibration(kModels / "sotu-qwen2", {}, o);
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  double zero = 0, total = 0, lowest = 1, highest = 0;
  for (const auto& [tensor, s] : pruned->sparsity) {
    const double n = double(pruned->weights.at(tensor).size());
    zero += s * n, total += n;
    lowest = std::min(lowest, s), highest = std::max(highest, s);
  }
  EXPECT_EQ(int64_t(zero + 0.5), int64_t(std::floor(0.6 * total)));
  EXPECT_LT(lowest, highest);  // matrices differ: the count is global, not per matrix
}

std::vector<int32_t> synthetic_calibration_tokens() {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 2048; ++i) tokens.push_back(int32_t(100 + (i * 7919) % 4000));
  return tokens;
}

StructuredPruneOptions structured(StructuredUnit unit, double ratio) {
  StructuredPruneOptions o;
  o.unit = unit;
  o.ratio = ratio;
  o.calibration.window = 128;
  o.calibration.min_tokens = 256;
  return o;
}

// Removing units must compute what the original computes with those units silenced: the kept
// ones are found by matching the pruned producer rows (up; q) to the original's, the original is
// run with the others' consumer columns (down; o) zeroed, and the logits agree. Neurons on Llama
// by weight norms and on GPT-2 (Conv1D layouts, biases) by calibrated activations; kv-head groups
// on Llama (6 heads over 2 kv heads) and Qwen2 (q/k/v biases).
TEST_F(PruneModel, StructuredPruningComputesTheKeptUnits) {
  struct Case { const char* model; StructuredUnit unit; double ratio; bool calibrated; };
  for (const Case& c : {Case{"sotu-llama", StructuredUnit::Neurons, 0.25, false},
                        Case{"sotu-gpt2", StructuredUnit::Neurons, 0.5, true},
                        Case{"sotu-llama", StructuredUnit::Heads, 0.5, true},
                        Case{"sotu-qwen2", StructuredUnit::Heads, 0.5, false}}) {
    const bool heads = c.unit == StructuredUnit::Heads;
    const std::string what = std::string(c.model) + (heads ? " heads" : " neurons");
    const fs::path out = dir_ / (std::string(c.model) + (heads ? "-heads" : "-neurons"));
    const std::vector<int32_t> tokens = c.calibrated ? synthetic_calibration_tokens() : std::vector<int32_t>{};
    auto report = prune_structured(kModels / c.model, out, tokens, structured(c.unit, c.ratio));
    ASSERT_TRUE(report.ok()) << what << ": " << report.error().message;
    EXPECT_LT(report->params_after, report->params_before) << what;

    CpuBackend backend(1);
    auto small = load_model(out, backend);
    ASSERT_TRUE(small.ok()) << small.error().message;
    auto original = load_model(kModels / c.model, backend);
    ASSERT_TRUE(original.ok());
    const ModelConfig& config = original.value()->config();
    if (heads) EXPECT_EQ(small.value()->config().n_kv_heads, report->units_after) << what;
    else EXPECT_EQ(small.value()->config().intermediate_size, report->units_after) << what;
    FloatWeights small_w = FloatWeights::copy_from(*small.value());
    FloatWeights silenced = FloatWeights::copy_from(*original.value());
    const Role producer = heads ? Role::AttnQ : Role::MlpUp, consumer = heads ? Role::AttnO : Role::MlpDown;
    for (const TensorSpec& spec : config.arch->tensors(config)) {
      if (spec.role != producer || spec.part != Part::Weight) continue;
      std::string into;
      for (const TensorSpec& d : config.arch->tensors(config))
        if (d.role == consumer && d.part == Part::Weight && d.layer == spec.layer) into = d.name;
      const std::vector<float>& kept_rows = small_w.at(spec.name);
      const std::vector<float>& rows = silenced.at(spec.name);
      const int64_t d = silenced.cols(spec.name), width = silenced.rows(spec.name);
      std::vector<bool> kept(size_t(width), false);
      int64_t next = 0;  // kept rows keep their order
      for (int64_t r = 0; r < small_w.rows(spec.name); ++r) {
        while (next < width && !std::equal(rows.begin() + next * d, rows.begin() + (next + 1) * d, kept_rows.begin() + r * d))
          ++next;
        ASSERT_LT(next, width) << what << ": " << spec.name << " row " << r << " is no row of the original";
        kept[size_t(next++)] = true;
      }
      std::vector<float>& wc = silenced.at(into);
      for (int64_t row = 0; row < silenced.rows(into); ++row)
        for (int64_t j = 0; j < width; ++j)
          if (!kept[size_t(j)]) wc[size_t(row * width + j)] = 0.0f;
    }
    silenced.bind_to(*original.value());
    const std::vector<int32_t> ids = {5, 300, 41, 1234, 77, 2048, 9, 610};
    const std::vector<float> want = golden::run(*original.value(), ids, 8);
    const std::vector<float> got = golden::run(*small.value(), ids, 8);
    EXPECT_LT(golden::relative_l2(got, want), 1e-5) << what;
  }
  StructuredPruneOptions all;
  all.ratio = 1.0;  // nothing would be left
  EXPECT_FALSE(prune_structured(kModels / "sotu-llama", dir_ / "x", {}, all).ok());
  all.unit = StructuredUnit::Heads;
  all.ratio = 0.5;
  const auto fused = prune_structured(kModels / "sotu-gpt2", dir_ / "x", {}, all);  // c_attn is fused
  ASSERT_FALSE(fused.ok());
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

// Layer pruning: the smaller model computes what the original computes with the removed layers
// silenced (o and down zeroed, biases too: such a layer adds nothing to the residual stream), on
// Llama, GPT-2 (LayerNorm, Conv1D, biases) and Qwen2, whose layer_types list shrinks with it.
// Without calibration text it is an error and nothing is written.
TEST_F(PruneModel, LayerPruningRemovesWholeLayers) {
  for (const char* name : {"sotu-llama", "sotu-gpt2", "sotu-qwen2"}) {
    const fs::path out = dir_ / (std::string(name) + "-layers");
    auto report = prune_structured(kModels / name, out, synthetic_calibration_tokens(), structured(StructuredUnit::Layers, 0.5));
    ASSERT_TRUE(report.ok()) << name << ": " << report.error().message;
    ASSERT_EQ(int64_t(report->layer_scores.size()), report->units_before) << name;
    ASSERT_EQ(int64_t(report->removed_layers.size()), report->units_before - report->units_after) << name;
    EXPECT_EQ(report->units_after, report->units_before / 2) << name;
    for (int64_t l : report->removed_layers)  // the lowest block influences went
      for (int64_t k = 0; k < report->units_before; ++k)
        if (std::find(report->removed_layers.begin(), report->removed_layers.end(), k) == report->removed_layers.end()) {
          EXPECT_LE(report->layer_scores[size_t(l)], report->layer_scores[size_t(k)]) << name << " layer " << l;
        }

    CpuBackend backend(1);
    auto small = load_model(out, backend);
    ASSERT_TRUE(small.ok()) << small.error().message;
    auto original = load_model(kModels / name, backend);
    ASSERT_TRUE(original.ok());
    EXPECT_EQ(small.value()->config().n_layers, report->units_after) << name;
    const ModelConfig& config = original.value()->config();
    FloatWeights silenced = FloatWeights::copy_from(*original.value());
    for (const TensorSpec& spec : config.arch->tensors(config))
      if ((spec.role == Role::AttnO || spec.role == Role::MlpDown) && silenced.has(spec.name) &&
          std::count(report->removed_layers.begin(), report->removed_layers.end(), spec.layer))
        std::fill(silenced.at(spec.name).begin(), silenced.at(spec.name).end(), 0.0f);
    silenced.bind_to(*original.value());
    const std::vector<int32_t> ids = {5, 300, 41, 1234, 77, 2048, 9, 610};
    EXPECT_LT(golden::relative_l2(golden::run(*small.value(), ids, 8), golden::run(*original.value(), ids, 8)), 1e-5) << name;
    const Json written = read_json_file(out / "config.json").value();
    if (written.contains("layer_types")) {
      EXPECT_EQ(int64_t(written["layer_types"].size()), report->units_after) << name;
    }
  }
  EXPECT_FALSE(prune_structured(kModels / "sotu-llama", dir_ / "x", {}, structured(StructuredUnit::Layers, 0.5)).ok());
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

// Hidden pruning: with the removed model-width channels silenced in the original (embedding
// columns, o and down output rows zeroed: the residual stream carries zeros there) and its norm
// weights scaled by sqrt(kept / d) (the smaller model's RMSNorm averages over fewer channels), the
// original computes the smaller model's logits, up to the norms' eps (which the scale does not
// carry over: measured 6.8e-4 relative with Llama's 1e-5, 5.5e-5 with Qwen2's 1e-6). Llama by
// calibrated activations, Qwen2 (tied embeddings, q/k/v biases) by weight norms; GPT-2 derives
// head_dim from the width and is refused.
TEST_F(PruneModel, HiddenPruningNarrowsTheResidualStream) {
  struct Case { const char* model; bool calibrated; double tolerance; };
  for (const Case& c : {Case{"sotu-llama", true, 2e-3}, Case{"sotu-qwen2", false, 2e-4}}) {
    const fs::path out = dir_ / (std::string(c.model) + "-hidden");
    const std::vector<int32_t> tokens = c.calibrated ? synthetic_calibration_tokens() : std::vector<int32_t>{};
    auto report = prune_structured(kModels / c.model, out, tokens, structured(StructuredUnit::Hidden, 0.25));
    ASSERT_TRUE(report.ok()) << c.model << ": " << report.error().message;
    const int64_t d = report->units_before, kept_width = report->units_after;
    EXPECT_EQ(kept_width, d * 3 / 4) << c.model;

    // The kept channels: the smaller embedding's columns, found among the original's in order.
    auto small_store = WeightStore::open_dir(out);
    auto store = WeightStore::open_dir(kModels / c.model);
    ASSERT_TRUE(small_store.ok() && store.ok());
    const Tensor& small_embed = small_store->all().at("model.embed_tokens.weight").tensor;
    const Tensor& embed = store->all().at("model.embed_tokens.weight").tensor;
    ASSERT_EQ(small_embed.shape[1], kept_width);
    const size_t es = dtype_size(embed.dtype);
    auto column_equal = [&](int64_t small_col, int64_t col) {
      for (int64_t r = 0; r < embed.shape[0]; ++r)
        if (std::memcmp(static_cast<const uint8_t*>(small_embed.data) + size_t(r * kept_width + small_col) * es,
                        static_cast<const uint8_t*>(embed.data) + size_t(r * d + col) * es, es))
          return false;
      return true;
    };
    std::vector<bool> kept(size_t(d), false);
    int64_t next = 0;
    for (int64_t j = 0; j < kept_width; ++j) {
      while (next < d && !column_equal(j, next)) ++next;
      ASSERT_LT(next, d) << c.model << ": column " << j << " is no column of the original";
      kept[size_t(next++)] = true;
    }

    CpuBackend backend(1);
    auto small = load_model(out, backend);
    ASSERT_TRUE(small.ok()) << small.error().message;
    auto original = load_model(kModels / c.model, backend);
    ASSERT_TRUE(original.ok());
    EXPECT_EQ(small.value()->config().hidden_size, kept_width);
    EXPECT_EQ(small.value()->config().head_dim, original.value()->config().head_dim);
    const ModelConfig& config = original.value()->config();
    FloatWeights silenced = FloatWeights::copy_from(*original.value());
    const float norm_scale = std::sqrt(float(kept_width) / float(d));
    for (const TensorSpec& spec : config.arch->tensors(config)) {
      if (!silenced.has(spec.name)) continue;
      std::vector<float>& w = silenced.at(spec.name);
      if (spec.role == Role::AttnNorm || spec.role == Role::MlpNorm || spec.role == Role::FinalNorm)
        for (float& v : w) v *= norm_scale;
      if (spec.role == Role::AttnO || spec.role == Role::MlpDown)  // [d, *] or a bias [d]
        for (int64_t row = 0; row < d; ++row)
          if (!kept[size_t(row)]) std::fill(w.begin() + row * silenced.cols(spec.name), w.begin() + (row + 1) * silenced.cols(spec.name), 0.0f);
    }
    silenced.bind_to(*original.value());
    std::vector<float> table;  // the embedding in fp32 with the removed columns zeroed
    original.value()->visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
      if (spec.role != Role::TokenEmbed) return;
      table.resize(size_t(slot.numel()));
      for (size_t i = 0; i < table.size(); ++i) table[i] = kept[i % size_t(d)] ? load_as_f32(slot.data, slot.dtype, i) : 0.0f;
      slot.data = table.data();
      slot.dtype = DType::F32;
    });
    const std::vector<int32_t> ids = {5, 300, 41, 1234, 77, 2048, 9, 610};
    EXPECT_LT(golden::relative_l2(golden::run(*small.value(), ids, 8), golden::run(*original.value(), ids, 8)), c.tolerance) << c.model;
  }
  EXPECT_FALSE(prune_structured(kModels / "sotu-gpt2", dir_ / "x", {}, structured(StructuredUnit::Hidden, 0.25)).ok());
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

// compressed-tensors sparse storage: the non-zeros and a bitmask (any pattern) or exactly two of
// every four (2:4), decompressed at load into the same weights as the dense folder, smaller on
// disk. GPT-2's Conv1D matrices are stored as they lie ([in, out]): sparse-bitmask works, 2:4
// (along the inputs, across the stored rows) is refused by name. Damaged parts are errors that
// name the tensor.
TEST_F(PruneModel, SparseStorageLoadsAsTheDenseWeights) {
  for (const char* name : {"sotu-llama", "sotu-gpt2"}) {
    PruneOptions o = options(PruneMethod::Magnitude, 0);
    o.pattern = parse_sparsity_pattern("2:4").value();
    auto pruned = prune_with_calibration(kModels / name, {}, o);
    ASSERT_TRUE(pruned.ok()) << pruned.error().message;
    const fs::path dense = dir_ / (std::string(name) + "-dense");
    ASSERT_TRUE(write_pruned_model(kModels / name, dense, pruned.value()).ok());
    CpuBackend backend(1);
    auto want = load_model(dense, backend);
    ASSERT_TRUE(want.ok());
    const FloatWeights expected = FloatWeights::copy_from(*want.value());
    for (SparseFormat format : {SparseFormat::Bitmask, SparseFormat::Bitmask24}) {
      const fs::path out = dir_ / (std::string(name) + "-" + sparse_format_name(format));
      const Status written = write_pruned_model(kModels / name, out, pruned.value(), format);
      if (std::string(name) == "sotu-gpt2" && format == SparseFormat::Bitmask24) {
        ASSERT_FALSE(written.ok());
        EXPECT_NE(written.error().message.find("not 2:4 sparse"), std::string::npos) << written.error().message;
        continue;
      }
      ASSERT_TRUE(written.ok()) << written.error().message;
      auto config = read_json_file(out / "config.json");
      ASSERT_TRUE(config.ok());
      EXPECT_EQ(config.value()["quantization_config"]["sparsity_config"]["format"], sparse_format_name(format));
      EXPECT_LT(fs::file_size(out / "model.safetensors"), fs::file_size(dense / "model.safetensors")) << out;
      auto loaded = load_model(out, backend);
      ASSERT_TRUE(loaded.ok()) << loaded.error().message;
      const FloatWeights got = FloatWeights::copy_from(*loaded.value());
      for (const std::string& tensor : expected.names()) EXPECT_EQ(got.at(tensor), expected.at(tensor)) << tensor;
      auto refused = prune_with_calibration(out, {}, o);  // passes read the dense folder
      ASSERT_FALSE(refused.ok());
      EXPECT_NE(refused.error().message.find("stored sparse"), std::string::npos);
    }
  }
  // Damaged parts of one matrix, each an error that names the matrix and what is wrong: a row
  // offset that disagrees with the bitmask, fewer values than the bitmask marks, a bitmask of the
  // wrong dtype, a huge shape, a missing bitmask; and a sparsity format brisk does not read.
  const fs::path out = dir_ / "sotu-llama-sparse-bitmask";
  const std::string weight = "model.layers.1.mlp.up_proj.weight";
  std::vector<std::pair<std::string, Tensor>> original;
  std::vector<std::vector<uint8_t>> copies;
  {
    auto store = WeightStore::open_dir(out);
    ASSERT_TRUE(store.ok());
    for (const auto& [tensor, stored] : store->all()) {
      const auto* data = static_cast<const uint8_t*>(stored.tensor.data);
      Tensor t = stored.tensor;
      t.data = copies.emplace_back(data, data + stored.tensor.nbytes()).data();
      original.push_back({tensor, t});
    }
  }
  const Json config = read_json_file(out / "config.json").value();
  using Damage = std::function<void(const std::string& name, Tensor& t, std::vector<uint8_t>& bytes, bool& keep)>;
  auto load_damaged = [&](const Damage& damage, const Json& cfg) {
    std::vector<NamedTensor> tensors;
    std::vector<std::vector<uint8_t>> edited;
    for (const auto& [name, t0] : original) {
      Tensor t = t0;
      std::vector<uint8_t>& bytes = edited.emplace_back(static_cast<const uint8_t*>(t0.data),
                                                        static_cast<const uint8_t*>(t0.data) + t0.nbytes());
      bool keep = true;
      damage(name, t, bytes, keep);
      t.data = bytes.data();
      if (keep) tensors.push_back({name, t});
    }
    EXPECT_TRUE(write_safetensors(out / "model.safetensors", tensors, {}).ok());
    EXPECT_TRUE(write_text_file(out / "config.json", cfg.dump()).ok());
    CpuBackend backend(1);
    auto loaded = load_model(out, backend);
    return loaded.ok() ? std::string("loaded") : loaded.error().message;
  };
  const std::vector<std::pair<Damage, std::string>> damages = {
      {[&](const std::string& n, Tensor&, std::vector<uint8_t>& b, bool&) { if (n == weight + ".row_offsets") b[8] ^= 1; },
       "row_offsets[1] is 193"},
      {[&](const std::string& n, Tensor& t, std::vector<uint8_t>& b, bool&) {
         if (n != weight + ".compressed") return;
         t.shape[0] -= 1;
         b.resize(b.size() - dtype_size(t.dtype));
       }, "the bitmask marks more values"},
      {[&](const std::string& n, Tensor& t, std::vector<uint8_t>&, bool&) {
         if (n == weight + ".bitmask") t.dtype = DType::F32, t.shape[1] /= 4;
       }, ".bitmask is F32"},
      {[&](const std::string& n, Tensor&, std::vector<uint8_t>& b, bool&) {
         if (n == weight + ".shape") b[5] = 1;  // rows 2^40 + 1024
       }, ".shape holds"},
      {[&](const std::string& n, Tensor&, std::vector<uint8_t>&, bool& keep) { keep = n != weight + ".bitmask"; },
       "lacks its .shape or .bitmask"}};
  for (const auto& [damage, needle] : damages) {
    const std::string message = load_damaged(damage, config);
    EXPECT_NE(message.find(weight), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  }
  Json other = config;
  other["quantization_config"]["sparsity_config"]["format"] = "sparse-csr";
  const std::string message = load_damaged([](const std::string&, Tensor&, std::vector<uint8_t>&, bool&) {}, other);
  EXPECT_NE(message.find("'sparse-csr' is not read by brisk"), std::string::npos) << message;
}

}  // namespace
}  // namespace brisk::calib
