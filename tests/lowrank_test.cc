// Low-rank factorization (compress/lowrank.h): the eigen solver, each method's decomposition
// (exact at full rank, its truncation error equal to the discarded spectrum in the method's
// metric), the rank choices, and factored models written, loaded and run by the engine.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <unistd.h>

#include "backends/cpu/cpu_backend.h"
#include "compress/calib_linalg.h"
#include "compress/calib_weights.h"
#include "compress/lowrank.h"
#include "compress/prune.h"
#include "formats/json_file.h"
#include "formats/weight_store.h"
#include "calib_inputs.h"
#include "golden_fixture.h"
#include "models/model.h"

namespace brisk::calib {
namespace {

namespace fs = std::filesystem;


// left[:, :r] · right[:r, :] [out, in].
std::vector<double> product(const Decomposition& d, int64_t r) {
  std::vector<double> w(size_t(d.out * d.in), 0.0);
  for (int64_t i = 0; i < d.out; ++i)
    for (int64_t j = 0; j < r; ++j)
      for (int64_t c = 0; c < d.in; ++c)
        w[size_t(i * d.in + c)] += double(d.left[size_t(i * d.k + j)]) * d.right[size_t(j * d.in + c)];
  return w;
}

// A v = V diag(values) with V orthonormal and values decreasing, to `tol` relative to A's scale.
void expect_eigen(const std::vector<double>& original, int64_t n, const std::string& what) {
  std::vector<double> a = original, values, v;
  symmetric_eigen(a, n, values, v);
  ASSERT_EQ(int64_t(values.size()), n) << what;
  double scale = 1e-300;
  for (double x : original) scale = std::max(scale, std::fabs(x));
  const double tol = 1e-11 * scale * double(n);
  for (int64_t j = 0; j + 1 < n; ++j) EXPECT_GE(values[size_t(j)], values[size_t(j + 1)]) << what;
  double worst_residual = 0, worst_orthogonality = 0;
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < n; ++i) {  // (A v_j)_i = lambda_j v_ij
      double av = 0;
      for (int64_t p = 0; p < n; ++p) av += original[size_t(i * n + p)] * v[size_t(p * n + j)];
      worst_residual = std::max(worst_residual, std::fabs(av - values[size_t(j)] * v[size_t(i * n + j)]));
    }
    for (int64_t q = 0; q < n; ++q) {  // orthonormal
      double dot = 0;
      for (int64_t p = 0; p < n; ++p) dot += v[size_t(p * n + j)] * v[size_t(p * n + q)];
      worst_orthogonality = std::max(worst_orthogonality, std::fabs(dot - (j == q ? 1.0 : 0.0)));
    }
  }
  EXPECT_LT(worst_residual, tol) << what;
  EXPECT_LT(worst_orthogonality, 1e-12 * double(n)) << what;
}

// Random symmetric matrices of odd and even sizes, and the hard cases of the QR iteration:
// repeated eigenvalues, an already diagonal or tridiagonal matrix, zeros, n = 1 and 2, and a
// rank-deficient Gram matrix (most of a whitened layer's spectrum is tiny) with a wide range.
TEST(LowRank, SymmetricEigenDiagonalizes) {
  for (int64_t n : {1, 2, 3, 41, 128, 201}) {
    const std::vector<float> b = random_matrix(n, n, uint32_t(n) + 3);
    std::vector<double> a(size_t(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) a[size_t(i * n + j)] = double(b[size_t(i * n + j)]) + b[size_t(j * n + i)];
    expect_eigen(a, n, "random " + std::to_string(n));
  }
  const int64_t n = 64;
  std::vector<double> a(size_t(n * n), 0.0);
  expect_eigen(a, n, "zero");
  for (int64_t i = 0; i < n; ++i) a[size_t(i * n + i)] = double(i % 3);  // three values, each ~21 times
  expect_eigen(a, n, "diagonal, repeated");
  for (int64_t i = 0; i + 1 < n; ++i) a[size_t(i * n + i + 1)] = a[size_t((i + 1) * n + i)] = 0.5;
  expect_eigen(a, n, "tridiagonal");
  std::vector<double> identity(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i) identity[size_t(i * n + i)] = 2.5;
  expect_eigen(identity, n, "a multiple of the identity");
  // G = X^T X for X [16, n] with columns scaled over six decades: rank 16, then zeros.
  const std::vector<float> x = random_matrix(16, n, 5);
  std::vector<double> gram(size_t(n * n), 0.0);
  for (int64_t r = 0; r < 16; ++r)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        gram[size_t(i * n + j)] += double(x[size_t(r * n + i)]) * std::pow(10.0, -6.0 * double(i) / double(n)) *
                                   double(x[size_t(r * n + j)]) * std::pow(10.0, -6.0 * double(j) / double(n));
  expect_eigen(gram, n, "rank-deficient Gram");
}

// Full rank gives W back, for tall and wide matrices and every transform; truncated, the error
// in the method's metric (Frobenius for svd; ||dW X^T||^2 = tr(dW H dW^T), H the damped X^T X, for
// svd-llm) is the sum of the discarded sigma2, and no other rank-r matrix found by the other
// method does better in that metric.
TEST(LowRank, DecompositionsAreExactAtFullRankAndOptimalTruncated) {
  for (auto [out, in] : {std::pair<int64_t, int64_t>{37, 23}, {23, 37}}) {
    const std::vector<float> w = random_matrix(out, in, uint32_t(out));
    const InputStats stats = correlated_inputs(in, 400, 7);
    LowRankOptions o;
    o.rank_ratio = 0.5;
    std::map<LowRankMethod, Decomposition> by_method;
    for (LowRankMethod m : {LowRankMethod::Svd, LowRankMethod::Asvd, LowRankMethod::SvdLlm}) {
      auto t = input_transform(m, &stats, in, o, "w");
      ASSERT_TRUE(t.ok()) << t.error().message;
      const Decomposition d = decompose(w.data(), out, in, t.value());
      ASSERT_EQ(d.k, std::min(out, in));
      const std::vector<double> full = product(d, d.k);
      for (size_t i = 0; i < w.size(); ++i) ASSERT_NEAR(full[i], w[i], 2e-4) << low_rank_method_name(m) << " " << i;
      by_method[m] = d;
    }
    // The metric of svd-llm: H = X^T X + damp * mean diagonal (as input_transform damps it).
    std::vector<double> h = stats.xtx;
    double mean_diag = 0;
    for (int64_t j = 0; j < in; ++j) mean_diag += h[size_t(j * in + j)] / double(in);
    for (int64_t j = 0; j < in; ++j) h[size_t(j * in + j)] += o.damp * mean_diag;
    auto error = [&](const std::vector<double>& approx, bool weighted) {
      double e = 0;
      for (int64_t r = 0; r < out; ++r) {
        std::vector<double> dw(static_cast<size_t>(in));
        for (int64_t c = 0; c < in; ++c) dw[size_t(c)] = w[size_t(r * in + c)] - approx[size_t(r * in + c)];
        for (int64_t i = 0; i < in; ++i) {
          if (!weighted) {
            e += dw[size_t(i)] * dw[size_t(i)];
            continue;
          }
          for (int64_t j = 0; j < in; ++j) e += dw[size_t(i)] * h[size_t(i * in + j)] * dw[size_t(j)];
        }
      }
      return e;
    };
    const int64_t r = 9;
    for (auto [m, weighted] : {std::pair{LowRankMethod::Svd, false}, std::pair{LowRankMethod::SvdLlm, true}}) {
      const Decomposition& d = by_method[m];
      double discarded = 0;
      for (int64_t j = r; j < d.k; ++j) discarded += d.sigma2[size_t(j)];
      EXPECT_NEAR(error(product(d, r), weighted), discarded, 1e-6 * discarded) << low_rank_method_name(m);
    }
    EXPECT_LT(error(product(by_method[LowRankMethod::SvdLlm], r), true),
              0.9 * error(product(by_method[LowRankMethod::Svd], r), true));
    EXPECT_LT(error(product(by_method[LowRankMethod::Svd], r), false),
              error(product(by_method[LowRankMethod::SvdLlm], r), false));
  }
}

TEST(LowRank, RanksMeetTheBudget) {
  std::vector<Decomposition> d;
  for (auto [out, in, seed] : {std::tuple<int64_t, int64_t, uint32_t>{64, 48, 1}, {48, 96, 2}, {80, 80, 3}}) {
    const std::vector<float> w = random_matrix(out, in, seed);
    d.push_back(decompose(w.data(), out, in, {}));
  }
  double dense = 0;
  for (const Decomposition& m : d) dense += double(m.out * m.in);
  LowRankOptions o;
  for (double c : {0.1, 0.3, 0.6}) {
    o.compression = c;
    auto ranks = choose_ranks(d, o);
    ASSERT_TRUE(ranks.ok()) << ranks.error().message;
    double kept = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const int64_t r = ranks.value()[i];
      if (r) {  // factored only where smaller
        EXPECT_LT(r * (d[i].out + d[i].in), d[i].out * d[i].in);
      }
      kept += double(r ? r * (d[i].out + d[i].in) : d[i].out * d[i].in);
    }
    EXPECT_LE(kept, (1 - c) * dense) << c;
    EXPECT_GT(kept, (1 - c) * dense - double(96 + 80 + 80 + 80)) << c;  // within one component of each
  }
  o.compression = 0.999;
  auto unreachable = choose_ranks(d, o);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_NE(unreachable.error().message.find("out of reach"), std::string::npos);
  o.compression = 0;
  o.rank_ratio = 0.25;
  auto ranks = choose_ranks(d, o);
  ASSERT_TRUE(ranks.ok());
  EXPECT_EQ(ranks.value(), (std::vector<int64_t>{12, 12, 20}));
  o.rank_ratio = 0.9;  // factors larger than the matrices: all stay whole
  EXPECT_EQ(choose_ranks(d, o).value(), (std::vector<int64_t>{0, 0, 0}));
  o.compression = 0.2;  // both
  EXPECT_FALSE(choose_ranks(d, o).ok());
  EXPECT_FALSE(parse_low_rank_method("tucker").ok());
}

class LowRankModelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { dir_ = fs::temp_directory_path() / ("brisk_lowrank_" + std::to_string(::getpid())); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// Every decoder linear layer factored at full rank (plain SVD) computes the dense model's logits,
// prefill and decode, through the written folder (factor names, the bias on the second factor,
// GPT-2's Conv1D layers as [out, in] factors); at half rank the folder loads and runs. The
// folder's config names the ranks, and passes that need whole matrices refuse it.
TEST_P(LowRankModelTest, FullRankFactorsComputeTheDenseModel) {
  const fs::path source = golden::kDir + GetParam();
  CpuBackend cpu(1);
  auto dense = load_model(source, cpu);
  ASSERT_TRUE(dense.ok()) << dense.error().message;
  const golden::Golden g = golden::read(GetParam());
  const std::vector<float> want = golden::run(*dense.value(), g.ids, int64_t(g.ids.size()));
  const FloatWeights weights = FloatWeights::copy_from(*dense.value());
  std::vector<Decomposition> decompositions;
  LowRankModel full, half;
  for (const std::string& name : calibrated_matrices(*dense.value())) {
    const Decomposition& d = decompositions.emplace_back(
        decompose(weights.at(name).data(), weights.rows(name), weights.cols(name), {}));
    for (auto [model, rank] : {std::pair{&full, d.k}, std::pair{&half, std::max<int64_t>(1, d.k / 2)}}) {
      FactoredMatrix f;
      f.name = name, f.out = d.out, f.in = d.in, f.rank = rank;
      for (int64_t r = 0; r < d.out; ++r)
        for (int64_t j = 0; j < rank; ++j) f.output_factor.push_back(d.left[size_t(r * d.k + j)]);
      f.input_factor.assign(d.right.begin(), d.right.begin() + rank * d.in);
      model->matrices.push_back(std::move(f));
    }
  }
  ASSERT_GT(decompositions.size(), 4u);
  for (auto [model, folder] : {std::pair{&full, "full"}, std::pair{&half, "half"}}) {
    const fs::path out = dir_ / folder;
    ASSERT_TRUE(write_low_rank_model(source, out, *model, LowRankMethod::Svd).ok());
    auto config = read_json_file(out / "config.json");
    ASSERT_TRUE(config.ok());
    EXPECT_EQ(config.value()["brisk_low_rank"]["method"], "svd");
    EXPECT_EQ(config.value()["brisk_low_rank"]["ranks"].size(), model->matrices.size());
    auto loaded = load_model(out, cpu);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    const std::vector<float> prefill = golden::run(*loaded.value(), g.ids, int64_t(g.ids.size()));
    const std::vector<float> decode = golden::run(*loaded.value(), g.ids, 1);
    EXPECT_LT(golden::relative_l2(decode, prefill), 1e-5) << folder;
    // bf16 folders store the factors in bf16: their product is the matrix to bf16 rounding only.
    if (model == &full) EXPECT_LT(golden::relative_l2(prefill, want), golden::is_bf16(GetParam()) ? 2e-2 : 1e-5);
    else EXPECT_GT(golden::relative_l2(prefill, want), 1e-3);  // half the rank is not the model
    EXPECT_LT(loaded.value()->parameter_count(), dense.value()->parameter_count() * (model == &full ? 3 : 1));
  }
  auto store = WeightStore::open_dir(dir_ / "full");
  ASSERT_TRUE(store.ok());
  int64_t factors = 0;
  for (const auto& [name, stored] : store->all()) factors += name.size() > 9 && name.rfind(".0.weight") == name.size() - 9;
  EXPECT_EQ(factors, int64_t(decompositions.size()));
  PruneOptions prune;
  prune.pattern = parse_sparsity_pattern("2:4").value();
  auto refused = prune_with_calibration(dir_ / "full", {}, prune);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("low-rank factored"), std::string::npos) << refused.error().message;
}

INSTANTIATE_TEST_SUITE_P(Golden, LowRankModelTest, ::testing::Values("llama-gqa", "qwen2", "gpt2", "llama-gqa-bf16"),
                         golden::test_name);

// A config that names a module that is not a linear layer, or a rank that is not a positive
// integer, or ranks that disagree with the stored factors: an error naming the thing at fault.
TEST(LowRank, BadLowRankConfigsAreRefused) {
  const fs::path dir = fs::temp_directory_path() / ("brisk_lowrank_cfg_" + std::to_string(::getpid()));
  const fs::path source = golden::kDir + "llama-gqa";
  CpuBackend cpu(1);
  auto dense = load_model(source, cpu);
  ASSERT_TRUE(dense.ok());
  const FloatWeights weights = FloatWeights::copy_from(*dense.value());
  LowRankModel m;
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  const Decomposition d = decompose(weights.at(name).data(), weights.rows(name), weights.cols(name), {});
  FactoredMatrix f;
  f.name = name, f.out = d.out, f.in = d.in, f.rank = 2;
  for (int64_t r = 0; r < d.out; ++r)
    for (int64_t j = 0; j < 2; ++j) f.output_factor.push_back(d.left[size_t(r * d.k + j)]);
  f.input_factor.assign(d.right.begin(), d.right.begin() + 2 * d.in);
  m.matrices.push_back(f);
  ASSERT_TRUE(write_low_rank_model(source, dir, m, LowRankMethod::Svd).ok());
  auto good = load_model(dir, cpu);
  ASSERT_TRUE(good.ok()) << good.error().message;
  Json config = read_json_file(dir / "config.json").value();
  const std::string module = "model.layers.0.self_attn.q_proj";
  for (auto [edit, needle] : {std::pair<Json, std::string>{Json{{"ranks", {{"model.layers.0.mlp.act", 2}}}}, "model.layers.0.mlp.act"},
                              {Json{{"ranks", {{module, 0}}}}, "must be an integer"},
                              {Json{{"ranks", {{module, "2"}}}}, "must be an integer"},
                              {Json{{"ranks", Json::object()}}, "non-empty object 'ranks'"},
                              {Json(3), "non-empty object 'ranks'"},
                              {Json{{"ranks", {{module, 3}}}}, "q_proj.0.weight"}}) {
    Json bad = config;
    bad["brisk_low_rank"] = edit;
    ASSERT_TRUE(write_text_file(dir / "config.json", bad.dump()).ok());
    auto loaded = load_model(dir, cpu);
    ASSERT_FALSE(loaded.ok()) << edit.dump();
    EXPECT_NE(loaded.error().message.find(needle), std::string::npos) << loaded.error().message;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace brisk::calib
