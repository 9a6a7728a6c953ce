// Calibrated quantization: capture, GPTQ against RTN on synthetic data, exactness of scale
// folding on a real model, user-facing errors, and an end-to-end perplexity check on sotu-llama.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "compress/calib_linalg.h"
#include "compress/calib_pipeline.h"
#include "core/mapped_file.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"

namespace brisk::calib {
namespace {

namespace fs = std::filesystem;
const fs::path kLlama = fs::path(BRISK_SHARED_DIR) / "models" / "sotu-llama";
const fs::path kText = fs::path(BRISK_SHARED_DIR) / "data" / "text";

std::vector<float> normal(size_t n, std::mt19937& rng, float sd = 1.0f) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// X [n, k] with correlated channels and a few outlier channels, as LLM activations have.
std::vector<float> correlated_inputs(int64_t n, int64_t k, std::mt19937& rng) {
  std::vector<float> z = normal(size_t(n * k), rng), mix = normal(size_t(k * k), rng, 0.3f), x(size_t(n * k));
  for (int64_t i = 0; i < k; ++i) mix[size_t(i * k + i)] += 1.0f;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) {
      float s = 0;
      for (int64_t i = 0; i < k; i += 4) s += z[size_t(r * k + i)] * mix[size_t(i * k + j)];
      x[size_t(r * k + j)] = s * (j % 37 == 0 ? 8.0f : 1.0f);
    }
  return x;
}

std::vector<double> gram(const std::vector<float>& x, int64_t n, int64_t k) {
  std::vector<double> h(size_t(k * k), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) h[size_t(i * k + j)] += double(x[size_t(r * k + i)]) * x[size_t(r * k + j)];
  return h;
}

// Codes and params reproduce the dequantized matrix exactly, codes within the scheme's range.
void expect_layout_consistent(const UnpackedMatrix& q) {
  const int64_t groups = q.groups();
  const QuantTraits& t = scheme_traits(q.spec.scheme);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      const GroupParams& p = q.params[size_t(r * groups + q.group_of(c))];
      const int code = q.codes[size_t(r * q.cols + c)];
      ASSERT_EQ((float(code) - float(p.zero)) * p.scale, q.dequantized[size_t(r * q.cols + c)]) << "row " << r << " col " << c;
      ASSERT_GE(code, t.bits == 4 ? 0 : -127);
      ASSERT_LE(code, t.bits == 4 ? 15 : 127);
    }
}

float fp16_rounded(float scale) { return f16_to_f32(f32_to_f16(scale)); }

TEST(Grid, AsymmetricKeepsZeroExactAndSymmetricIsCentred) {
  // all positive: the range is widened to 0
  const QuantTraits& w4 = scheme_traits(QuantScheme::W4);
  const GroupParams a = fit_grid(w4, Symmetry::Asymmetric, 0.1f, 0.9f);
  EXPECT_EQ(round_trip(w4, 0.0f, a), 0.0f);
  // The extremes come back up to the fp16 rounding of the scale (what the runtime blocks store).
  EXPECT_NEAR(round_trip(w4, 0.9f, a), 0.9f, 1e-3);
  EXPECT_EQ(fp16_rounded(a.scale), a.scale);
  const GroupParams s = fit_grid(w4, Symmetry::Symmetric, 0.1f, 0.9f);
  EXPECT_EQ(s.zero, 8);
  EXPECT_EQ(fp16_rounded(s.scale), s.scale);
  EXPECT_NEAR(round_trip(w4, 0.9f, s), 0.9f, 1e-3);
  EXPECT_NEAR(round_trip(w4, -0.9f, s), -0.9f, 1e-3);
  // A shrunk range clips: the symmetric grid's absmax scales by shrink.hi.
  const GroupParams clipped = fit_grid(w4, Symmetry::Symmetric, -0.1f, 0.9f, Shrink{1.0f, 0.5f});
  EXPECT_NEAR(round_trip(w4, 0.9f, clipped), 0.45f, 1e-3);
}

// One RTN: the calibrated methods' baseline, packed, is byte for byte what `brisk quantize`
// writes (quantize_matrix), for every scheme with an integer grid and both symmetries.
TEST(Grid, CalibratedRtnPacksToTheRuntimeRtn) {
  std::mt19937 rng(21);
  const int64_t rows = 6, cols = 256;
  const std::vector<float> w = normal(size_t(rows * cols), rng);
  for (QuantSpec spec : {QuantSpec{QuantScheme::W4, 128, Symmetry::Asymmetric},
                         QuantSpec{QuantScheme::W4, 128, Symmetry::Symmetric},
                         QuantSpec{QuantScheme::W8, 128, Symmetry::Symmetric},
                         QuantSpec{QuantScheme::W8A8, 128, Symmetry::Symmetric}}) {
    const UnpackedMatrix unpacked = quantize_rtn(w.data(), rows, cols, spec);
    expect_layout_consistent(unpacked);
    const QuantizedMatrix packed = pack(unpacked);
    auto direct = quantize_matrix(w.data(), rows, cols, spec, "w");
    ASSERT_TRUE(direct.ok()) << direct.error().message;
    ASSERT_EQ(packed.tensor.nbytes(), direct->tensor.nbytes());
    EXPECT_EQ(std::memcmp(packed.bytes.get(), direct->bytes.get(), packed.tensor.nbytes()), 0)
        << quant_scheme_name(spec.scheme) << (spec.symmetry == Symmetry::Symmetric ? " sym" : " asym");
  }
  // Codebook and fp8 schemes have no integer grid to search.
  for (QuantScheme scheme : {QuantScheme::NF4, QuantScheme::LOG2, QuantScheme::FP8}) {
    const Status bad = check_grid_spec(QuantSpec{scheme, 128, Symmetry::Symmetric}, cols, "gptq");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("no integer grid"), std::string::npos) << bad.error().message;
  }
}

// The range search never does worse than the full range on its own objective, and clips what
// matters little: an outlier at one end of an asymmetric group, that end much more than the other.
TEST(GridSearch, NeverWorseThanFullRangeAndClipsAnUnimportantOutlier) {
  std::mt19937 rng(11);
  const int64_t rows = 16, n = 128;
  std::vector<float> w = normal(size_t(rows * n), rng), importance = normal(size_t(n), rng);
  for (float& v : importance) v = std::fabs(v);
  for (Symmetry symmetry : {Symmetry::Asymmetric, Symmetry::Symmetric}) {
    const QuantSpec spec{QuantScheme::W4, n, symmetry};
    const QuantTraits& w4 = scheme_traits(spec.scheme);
    const std::vector<GroupParams> grids = search_grids(w.data(), rows, n, n, importance.data(), spec, {});
    double searched = 0, full = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = w.data() + r * n;
      const auto [lo, hi] = value_range(wr, n, 1);
      const double e = weighted_grid_error(wr, n, importance.data(), w4, grids[size_t(r)]);
      const double e_full = weighted_grid_error(wr, n, importance.data(), w4, fit_grid(w4, symmetry, lo, hi));
      EXPECT_LE(e, e_full) << "row " << r;
      searched += e;
      full += e_full;
      EXPECT_EQ(fp16_rounded(grids[size_t(r)].scale), grids[size_t(r)].scale);
    }
    EXPECT_LT(searched, full) << (symmetry == Symmetry::Symmetric ? "sym" : "asym");
  }
  // Values spread evenly over [-1, 1] and one at 1.6 that hardly counts.
  std::vector<float> v(static_cast<size_t>(n)), weight(static_cast<size_t>(n), 1.0f);
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = -1.0f + 2.0f * float(i) / float(n - 1);
  v[7] = 1.6f;
  weight[7] = 0.01f;
  const QuantSpec asym{QuantScheme::W4, n, Symmetry::Asymmetric};
  const QuantTraits& w4 = scheme_traits(asym.scheme);
  const auto [lo, hi] = value_range(v.data(), n, 1);
  const std::vector<Shrink> shrinks = search_shrinks(1, asym, {}, [&](const std::vector<Shrink>& s, std::vector<double>& e) {
    e[0] = weighted_grid_error(v.data(), n, weight.data(), w4, fit_grid(w4, Symmetry::Asymmetric, lo, hi, s[0]));
  });
  EXPECT_LE(shrinks[0].hi, 0.7f);  // about 1 / 1.6
  EXPECT_GT(shrinks[0].lo, 0.9f);
}

// AWQ's clipping search lowers the output error ||X W^T - X Q^T||^2 below RTN's. Asymmetric grids
// count the cross-group terms (a coordinate descent from RTN's grids over each row's groups), so
// no row ends above RTN; symmetric grids judge each group by its own block of H.
TEST(AwqClip, LowerOutputErrorThanRtn) {
  std::mt19937 rng(13);
  const int64_t rows = 32, cols = 256, n = 2048;
  const std::vector<float> w = normal(size_t(rows * cols), rng);
  std::vector<float> x = correlated_inputs(n, cols, rng);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < cols; i += 3) x[size_t(r * cols + i)] += 2.0f;  // channels with a mean
  const std::vector<float> h = to_float(gram(x, n, cols));
  CpuBackend cpu(2);
  for (Symmetry symmetry : {Symmetry::Asymmetric, Symmetry::Symmetric}) {
    const QuantSpec spec{QuantScheme::W4, 64, symmetry};
    const UnpackedMatrix rtn = quantize_rtn(w.data(), rows, cols, spec);
    const UnpackedMatrix clipped = awq_quantize_matrix(cpu, w.data(), rows, cols, h, spec, AwqOptions{});
    expect_layout_consistent(clipped);
    const double e_rtn = output_error(cpu, w.data(), rtn.dequantized.data(), rows, cols, h);
    const double e_clip = output_error(cpu, w.data(), clipped.dequantized.data(), rows, cols, h);
    EXPECT_LT(e_clip, 0.9 * e_rtn) << (symmetry == Symmetry::Symmetric ? "sym" : "asym");
    if (symmetry == Symmetry::Symmetric) continue;
    for (int64_t r = 0; r < rows; ++r) {
      const double row_rtn = output_error(cpu, w.data() + r * cols, rtn.dequantized.data() + r * cols, 1, cols, h);
      const double row_clip = output_error(cpu, w.data() + r * cols, clipped.dequantized.data() + r * cols, 1, cols, h);
      EXPECT_LE(row_clip, row_rtn * (1 + 1e-4)) << "row " << r;
    }
  }
}

struct GptqCase {
  Symmetry symmetry;
  ActOrder act_order;
  GroupOrder group_order;
};

class GptqVsRtn : public ::testing::TestWithParam<GptqCase> {};

TEST_P(GptqVsRtn, LowerOutputErrorThanRoundToNearest) {
  std::mt19937 rng(7);
  const int64_t rows = 48, cols = 256, n = 2048;
  const std::vector<float> w = normal(size_t(rows * cols), rng);
  const std::vector<float> x = correlated_inputs(n, cols, rng);
  const std::vector<double> xtx = gram(x, n, cols);
  const QuantSpec spec{QuantScheme::W4, 64, GetParam().symmetry};
  GptqOptions options;
  options.block = 48;  // blocks that do not line up with groups
  options.act_order = GetParam().act_order;
  options.group_order = GetParam().group_order;
  auto q = gptq(w.data(), rows, cols, xtx, spec, options);
  ASSERT_TRUE(q.ok()) << q.error().message;
  expect_layout_consistent(q.value());
  EXPECT_EQ(q->group_index.empty(), !(options.act_order == ActOrder::On && options.group_order == GroupOrder::Activation));
  const UnpackedMatrix rtn = quantize_rtn(w.data(), rows, cols, spec);
  CpuBackend cpu(2);
  const std::vector<float> h = to_float(xtx);
  const double e_rtn = output_error(cpu, w.data(), rtn.dequantized.data(), rows, cols, h);
  const double e_gptq = output_error(cpu, w.data(), q->dequantized.data(), rows, cols, h);
  // The same error computed directly as ||X W^T - X Q^T||^2 agrees with the H form.
  double direct = 0;
  for (int64_t r = 0; r < n; r += 1)
    for (int64_t o = 0; o < rows; ++o) {
      double d = 0;
      for (int64_t i = 0; i < cols; ++i)
        d += double(x[size_t(r * cols + i)]) * (w[size_t(o * cols + i)] - q->dequantized[size_t(o * cols + i)]);
      direct += d * d;
    }
  EXPECT_NEAR(e_gptq / direct, 1.0, 1e-3);
  EXPECT_LT(e_gptq, 0.8 * e_rtn) << "rtn " << e_rtn << " gptq " << e_gptq;
}

INSTANTIATE_TEST_SUITE_P(Variants, GptqVsRtn,
                         ::testing::Values(GptqCase{Symmetry::Asymmetric, ActOrder::Off, GroupOrder::Static},
                                           GptqCase{Symmetry::Symmetric, ActOrder::Off, GroupOrder::Static},
                                           GptqCase{Symmetry::Asymmetric, ActOrder::On, GroupOrder::Static},
                                           GptqCase{Symmetry::Symmetric, ActOrder::On, GroupOrder::Activation}));

TEST(Gptq, DeadInputsAreZeroedAndGroupsMustDivide) {
  std::mt19937 rng(3);
  const int64_t rows = 4, cols = 64;
  const std::vector<float> w = normal(size_t(rows * cols), rng);
  std::vector<float> x = normal(size_t(256 * cols), rng);
  for (int64_t r = 0; r < 256; ++r) x[size_t(r * cols + 5)] = 0;  // channel 5 never fires
  auto q = gptq(w.data(), rows, cols, gram(x, 256, cols), QuantSpec{QuantScheme::W4, 32, Symmetry::Asymmetric});
  ASSERT_TRUE(q.ok());
  for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(q->dequantized[size_t(r * cols + 5)], 0.0f);
  auto bad = gptq(w.data(), rows, cols, gram(x, 256, cols), QuantSpec{QuantScheme::W4, 48, Symmetry::Asymmetric});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("does not divide"), std::string::npos) << bad.error().message;
}

TEST(Calibration, SharedInputsRecordedOnceWithExactStatistics) {
  CpuBackend cpu(1);
  CalibratingBackend capture(cpu);
  std::mt19937 rng(1);
  const int64_t m = 5, k = 8, n = 3;
  std::vector<float> wa = normal(size_t(n * k), rng), wb = normal(size_t(n * k), rng), y(size_t(m * n));
  const Tensor a{wa.data(), DType::F32, {n, k}}, b{wb.data(), DType::F32, {n, k}};
  capture.start_capture({{wa.data(), "a"}, {wb.data(), "b"}}, 2, 2);
  // a and b read the same x back to back, twice (the second time negated: new activations with
  // the same x^T x and |x|).
  std::vector<float> x = normal(size_t(m * k), rng);
  for (int pass = 0; pass < 2; ++pass) {
    for (float& v : x) v = -v;
    capture.matmul(x.data(), m, k, a, nullptr, y.data());
    capture.matmul(x.data(), m, k, b, nullptr, y.data());
  }
  auto stats = capture.finish_capture();
  ASSERT_EQ(stats.size(), 2u);
  ASSERT_EQ(stats["a"], stats["b"]);
  const InputStats& s = *stats["a"];
  EXPECT_EQ(s.rows, 2 * m);
  EXPECT_EQ(s.sample_rows(), 2);
  const std::vector<double> expect = gram(x, m, k);
  for (size_t i = 0; i < expect.size(); ++i) EXPECT_NEAR(s.xtx[i], 2 * expect[i], 1e-4);
  for (int64_t i = 0; i < k; ++i) {
    float mx = 0;
    for (int64_t r = 0; r < m; ++r) mx = std::max(mx, std::fabs(x[size_t(r * k + i)]));
    EXPECT_EQ(s.abs_max[size_t(i)], mx);
  }
}

std::vector<int32_t> text_tokens(const fs::path& file, size_t limit) {
  auto tokenizer = Tokenizer::load(kLlama);
  EXPECT_TRUE(tokenizer.ok());
  std::string text = read_text_file(file).value();
  text.resize(std::min(text.size(), limit * 8));
  std::vector<int32_t> ids = tokenizer.value()->encode(text, AddSpecial::No);
  if (ids.size() > limit) ids.resize(limit);
  return ids;
}

TEST(Calibration, SotuLlamaEveryLayerMatrixCaptured) {
  CpuBackend cpu(2);
  CalibratingBackend capture(cpu);
  auto model = load_model(kLlama, capture, {128, 128});
  ASSERT_TRUE(model.ok()) << model.error().message;
  const std::vector<int32_t> tokens = text_tokens(kText / "sotu-train.txt", 300);
  CalibrationOptions options;
  options.window = 128;
  options.min_tokens = 256;
  auto stats = calibrate(*model.value(), capture, tokens, options);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats->tokens, 256);
  EXPECT_EQ(stats->by_tensor.size(), 6u * 7u);
  const std::string p = "model.layers.3.";
  EXPECT_EQ(stats->find(p + "self_attn.q_proj.weight"), stats->find(p + "self_attn.v_proj.weight"));
  EXPECT_EQ(stats->find(p + "mlp.gate_proj.weight"), stats->find(p + "mlp.up_proj.weight"));
  EXPECT_NE(stats->find(p + "mlp.up_proj.weight"), stats->find(p + "mlp.down_proj.weight"));
  EXPECT_EQ(stats->find(p + "mlp.down_proj.weight")->width, 1024);
  EXPECT_EQ(stats->find(p + "mlp.down_proj.weight")->rows, 256);

  options.min_tokens = 1024;
  auto too_few = calibrate(*model.value(), capture, tokens, options);
  ASSERT_FALSE(too_few.ok());
  EXPECT_NE(too_few.error().message.find("too little calibration text"), std::string::npos);
}

TEST(Calibration, WindowsSpreadOverTheWholeText) {
  CpuBackend cpu(2);
  CalibratingBackend capture(cpu);
  auto model = load_model(kLlama, capture, {128, 128});
  ASSERT_TRUE(model.ok()) << model.error().message;
  std::vector<int32_t> tokens = text_tokens(kText / "sotu-train.txt", 4 * 128);
  ASSERT_EQ(tokens.size(), 4u * 128u);
  CalibrationOptions options;
  options.window = 128;
  options.min_tokens = 256;
  options.max_tokens = 256;  // two of the four windows: the first and the third
  tokens[128 + 5] = -1;      // in the second window, which is skipped
  auto spread = calibrate(*model.value(), capture, tokens, options);
  ASSERT_TRUE(spread.ok()) << spread.error().message;
  EXPECT_EQ(spread->windows, 2);
  tokens[2 * 128 + 5] = -1;  // in the third, which is read
  auto bad = calibrate(*model.value(), capture, tokens, options);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("outside the model's vocabulary"), std::string::npos) << bad.error().message;
}

// The property GPTQ is built on, on real activations: for every matrix of sotu-llama's first two
// layers, ||X W^T - X Q^T||^2 over the calibration rows is below round-to-nearest's.
TEST(Gptq, LowerOutputErrorThanRtnOnSotuLlamaActivations) {
  CpuBackend cpu(2);
  CalibratingBackend capture(cpu);
  auto model = load_model(kLlama, capture, {512, 512});
  ASSERT_TRUE(model.ok()) << model.error().message;
  CalibrationOptions options;
  options.window = 512;
  options.select = [](const TensorSpec& spec) { return spec.layer == 0 || spec.layer == 1; };
  auto stats = calibrate(*model.value(), capture, text_tokens(kText / "sotu-train.txt", 4 * 512), options);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  ASSERT_EQ(stats->by_tensor.size(), 14u);
  FloatWeights weights = FloatWeights::copy_from(*model.value());
  for (Symmetry symmetry : {Symmetry::Asymmetric, Symmetry::Symmetric}) {
    const QuantSpec spec{QuantScheme::W4, 128, symmetry};
    for (const auto& [name, input] : stats->by_tensor) {
      const std::vector<float>& w = weights.at(name);
      const int64_t rows = weights.rows(name), cols = weights.cols(name);
      auto q = gptq(w.data(), rows, cols, input->xtx, spec);
      ASSERT_TRUE(q.ok()) << name << ": " << q.error().message;
      const UnpackedMatrix rtn = quantize_rtn(w.data(), rows, cols, spec);
      const std::vector<float> h = to_float(input->xtx);
      const double e_gptq = output_error(cpu, w.data(), q->dequantized.data(), rows, cols, h);
      const double e_rtn = output_error(cpu, w.data(), rtn.dequantized.data(), rows, cols, h);
      EXPECT_LT(e_gptq, 0.9 * e_rtn) << name << (symmetry == Symmetry::Symmetric ? " sym" : " asym");
    }
  }
}

TEST(SmoothQuant, MigratingOutliersLowersW8A8Error) {
  std::mt19937 rng(5);
  const int64_t n = 256, k = 128, rows = 64;
  std::vector<float> x = normal(size_t(n * k), rng), w = normal(size_t(rows * k), rng, 0.05f);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; i += 16) x[size_t(r * k + i)] *= 60.0f;  // outlier channels
  std::vector<float> act_max(size_t(k), 0.0f), weight_max(size_t(k), 0.0f);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) act_max[size_t(i)] = std::max(act_max[size_t(i)], std::fabs(x[size_t(r * k + i)]));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i) weight_max[size_t(i)] = std::max(weight_max[size_t(i)], std::fabs(w[size_t(r * k + i)]));
  CpuBackend cpu(1);
  std::vector<float> reference(size_t(n * rows));
  matmul_host(cpu, x.data(), n, k, w.data(), rows, reference.data());
  auto w8a8_error = [&](const std::vector<float>& s) {
    std::vector<float> xs(x), ws(w), y(size_t(n * rows));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < k; ++i) xs[size_t(r * k + i)] /= s[size_t(i)];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < k; ++i) ws[size_t(r * k + i)] *= s[size_t(i)];
    fake_quantize_rows(xs.data(), n, k);
    const UnpackedMatrix q = quantize_rtn(ws.data(), rows, k, kSmoothQuantWeights);
    matmul_host(cpu, xs.data(), n, k, q.dequantized.data(), rows, y.data());
    double e = 0;
    for (size_t i = 0; i < y.size(); ++i) e += double(y[i] - reference[i]) * double(y[i] - reference[i]);
    return e;
  };
  const double plain = w8a8_error(std::vector<float>(size_t(k), 1.0f));
  const double smoothed = w8a8_error(smoothing_scales(act_max, weight_max, 0.5f));
  EXPECT_LT(smoothed, 0.5 * plain) << "plain " << plain << " smoothed " << smoothed;
}

// Logits of `model` for a fixed prompt.
std::vector<float> logits_of(Model& model, const std::vector<int32_t>& tokens) {
  KvCache cache = model.make_cache(int64_t(tokens.size()));
  std::vector<float> logits(tokens.size() * size_t(model.config().vocab_size));
  model.forward(tokens.data(), int64_t(tokens.size()), 0, cache, LogitRows::All, logits.data());
  return logits;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

TEST(Folding, ScalesFoldedIntoProducersKeepTheFp32Model) {
  CpuBackend cpu(2);
  auto model = load_model(kLlama, cpu, {64, 64});
  ASSERT_TRUE(model.ok()) << model.error().message;
  Model& m = *model.value();
  const std::vector<int32_t> tokens = text_tokens(kText / "sotu-test.txt", 64);
  const std::vector<float> original = logits_of(m, tokens);
  FloatWeights weights = FloatWeights::copy_from(m);
  weights.bind_to(m);
  const std::vector<float> fp32 = logits_of(m, tokens);
  EXPECT_LT(max_abs_diff(original, fp32), 1e-4f);
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  for (Folds folds : {Folds::All, Folds::NormOnly}) {  // AWQ's and SmoothQuant's fold sites
    auto groups = scale_groups(m.config(), folds);
    ASSERT_TRUE(groups.ok()) << groups.error().message;
    for (const ScaleGroup& g : groups.value()) {
      std::vector<float> s(size_t(g.channels(weights.cols(g.consumers[0]))));
      for (float& v : s) v = u(rng);
      fold_scales(weights, g, s);
    }
  }
  const std::vector<float> folded = logits_of(m, tokens);
  EXPECT_LT(max_abs_diff(fp32, folded), 1e-4f);
  auto all = scale_groups(m.config(), Folds::All);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all.value()[1].channel_of.size(), 384u);  // GQA: 6 q heads, 2 kv
}

// Perplexity on a slice of sotu-test with the weights of `out` bound into the engine's model.
double slice_perplexity(Engine& engine, FloatWeights& weights, const std::vector<int32_t>& tokens) {
  weights.bind_to(engine.model());
  auto r = perplexity(engine, tokens, 512);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r->ppl : 0.0;
}

TEST(EndToEnd, GptqAndAwqBeatRtnOnSotuLlamaW4) {
  EngineOptions eo;
  eo.model_dir = kLlama;
  eo.context = 512;
  eo.backend.threads = 2;
  auto engine = Engine::open(eo);
  ASSERT_TRUE(engine.ok()) << engine.error().message;
  // Small slices keep this a unit test; bench/calib_ppl measures the whole test set.
  const std::vector<int32_t> test = text_tokens(kText / "sotu-test.txt", 3 * 512);
  const std::vector<int32_t> calib = text_tokens(kText / "sotu-train.txt", 6 * 512);
  FloatWeights fp32 = FloatWeights::copy_from(engine.value()->model());
  const double base = slice_perplexity(*engine.value(), fp32, test);
  std::map<Method, double> ppl;
  for (Method method : {Method::Rtn, Method::Gptq, Method::Awq}) {
    PipelineOptions o;
    o.method = method;
    o.spec = {QuantScheme::W4, 128, Symmetry::Asymmetric};  // as GPTQ and AWQ ship
    o.threads = 2;
    o.sequential = Sequential::Off;
    auto out = quantize_with_calibration(kLlama, calib, o);
    ASSERT_TRUE(out.ok()) << out.error().message;
    EXPECT_EQ(out->matrices.size(), 42u);
    ppl[method] = slice_perplexity(*engine.value(), out->weights, test);
    fp32.bind_to(engine.value()->model());  // out->weights dies here
  }
  std::printf("ppl fp32 %.4f rtn %.4f gptq %.4f awq %.4f\n", base, ppl[Method::Rtn], ppl[Method::Gptq],
              ppl[Method::Awq]);
  EXPECT_GT(ppl[Method::Rtn], base);
  EXPECT_LT(ppl[Method::Gptq], ppl[Method::Rtn]);
  EXPECT_LT(ppl[Method::Awq], ppl[Method::Rtn]);
}

// Fold sites come from the roles of pre-norm blocks: a post-norm encoder has none, and says so.
TEST(Folding, PostNormEncodersAreRefused) {
  auto bert = parse_model_config(Json{{"model_type", "bert"}, {"vocab_size", 10}, {"hidden_size", 16},
                                      {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"intermediate_size", 8}},
                                 "config.json");
  ASSERT_TRUE(bert.ok()) << bert.error().message;
  auto groups = scale_groups(*bert, Folds::All);
  ASSERT_FALSE(groups.ok());
  EXPECT_NE(groups.error().message.find("pre-norm"), std::string::npos) << groups.error().message;
}

TEST(Pipeline, UnknownMethodNamed) {
  auto m = parse_method("gguf");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("'gguf'"), std::string::npos);
  EXPECT_EQ(parse_method("awq").value(), Method::Awq);
}

}  // namespace
}  // namespace brisk::calib
