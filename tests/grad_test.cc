// Finite-difference checks of the reference backward passes (ops/reference_grad.h): each op's
// gradient against central differences of its forward, on random inputs and odd sizes. The loss is
// a random projection of the op's output, L = sum(y * r), so dL/dy = r.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "ops/reference.h"
#include "ops/reference_grad.h"

namespace brisk {
namespace {

std::vector<float> random_values(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// Central differences of `loss` with respect to every element of `x` (or every `stride`-th), checked
// against `analytic`.
void expect_gradient(std::vector<float>& x, const std::vector<float>& analytic, const std::function<double()>& loss,
                     const char* what, size_t stride = 1, double eps = 1e-2, double tolerance = 3e-3) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const float saved = x[i];
    x[i] = saved + float(eps);
    const double up = loss();
    x[i] = saved - float(eps);
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * eps);
    const double error = std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(numeric));
    worst = std::max(worst, error);
    EXPECT_LE(error, tolerance) << what << "[" << i << "]: analytic " << analytic[i] << ", numeric " << numeric;
  }
  std::printf("[grad] %-28s worst relative error %.2e\n", what, worst);
}

TEST(ReferenceGrad, Linear) {
  std::mt19937 rng(1);
  const int64_t m = 3, k = 7, n = 5;
  auto x = random_values(size_t(m * k), rng), w = random_values(size_t(n * k), rng), b = random_values(size_t(n), rng);
  const auto r = random_values(size_t(m * n), rng);
  auto loss = [&] {
    std::vector<float> y(size_t(m * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t o = 0; o < n; ++o) {
        double s = b[size_t(o)];
        for (int64_t j = 0; j < k; ++j) s += double(x[size_t(i * k + j)]) * w[size_t(o * k + j)];
        y[size_t(i * n + o)] = float(s);
      }
    return dot(y, r);
  };
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  ref::linear_backward(x.data(), m, k, w.data(), n, r.data(), dx.data(), dw.data(), db.data());
  expect_gradient(x, dx, loss, "linear dx");
  expect_gradient(w, dw, loss, "linear dw");
  expect_gradient(b, db, loss, "linear db");
}

TEST(ReferenceGrad, Norms) {
  std::mt19937 rng(2);
  const int64_t rows = 3, d = 13;
  const float eps = 1e-5f;
  auto x = random_values(size_t(rows * d), rng), w = random_values(size_t(d), rng), b = random_values(size_t(d), rng);
  const auto r = random_values(size_t(rows * d), rng);
  std::vector<float> y(x.size());
  auto rms_loss = [&] {
    ref::rms_norm(x.data(), w.data(), rows, d, eps, y.data());
    return dot(y, r);
  };
  std::vector<float> dx(x.size()), dw(w.size(), 0.0f), db(b.size(), 0.0f);
  ref::rms_norm_backward(x.data(), w.data(), rows, d, eps, r.data(), dx.data(), dw.data());
  expect_gradient(x, dx, rms_loss, "rms_norm dx");
  expect_gradient(w, dw, rms_loss, "rms_norm dweight");
  auto ln_loss = [&] {
    ref::layer_norm(x.data(), w.data(), b.data(), rows, d, eps, y.data());
    return dot(y, r);
  };
  std::fill(dw.begin(), dw.end(), 0.0f);
  ref::layer_norm_backward(x.data(), w.data(), rows, d, eps, r.data(), dx.data(), dw.data(), db.data());
  expect_gradient(x, dx, ln_loss, "layer_norm dx");
  expect_gradient(w, dw, ln_loss, "layer_norm dweight");
  expect_gradient(b, db, ln_loss, "layer_norm dbias");
}

TEST(ReferenceGrad, RopeIsItsOwnInverseTransposed) {
  std::mt19937 rng(3);
  const int64_t rows = 4, heads = 3, head_dim = 8, half = head_dim / 2, positions_count = 10;
  std::vector<float> cos_table, sin_table;
  for (int64_t p = 0; p < positions_count; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(p) * std::pow(10000.0, -2.0 * double(i) / double(head_dim));
      cos_table.push_back(float(std::cos(angle)));
      sin_table.push_back(float(std::sin(angle)));
    }
  const std::vector<int32_t> positions = {0, 3, 7, 9};
  auto x = random_values(size_t(rows * heads * head_dim), rng);
  const auto r = random_values(x.size(), rng);
  auto loss = [&] {
    std::vector<float> y = x;
    ref::rope(y.data(), rows, heads, head_dim, positions.data(), cos_table.data(), sin_table.data());
    return dot(y, r);
  };
  std::vector<float> dx = r;
  ref::rope_backward(dx.data(), rows, heads, head_dim, positions.data(), cos_table.data(), sin_table.data());
  expect_gradient(x, dx, loss, "rope dx");
}

TEST(ReferenceGrad, Activations) {
  std::mt19937 rng(4);
  const int64_t n = 41;
  auto gate = random_values(size_t(n), rng, 2.0f), up = random_values(size_t(n), rng);
  const auto r = random_values(size_t(n), rng);
  std::vector<float> y(static_cast<size_t>(n));
  auto swiglu_loss = [&] {
    ref::silu_mul(gate.data(), up.data(), y.data(), n);
    return dot(y, r);
  };
  std::vector<float> dgate(static_cast<size_t>(n)), dup(static_cast<size_t>(n));
  ref::silu_mul_backward(gate.data(), up.data(), r.data(), dgate.data(), dup.data(), n);
  expect_gradient(gate, dgate, swiglu_loss, "silu_mul dgate");
  expect_gradient(up, dup, swiglu_loss, "silu_mul dup");
  for (bool exact : {true, false}) {
    auto loss = [&] {
      y = gate;
      if (exact) ref::gelu_erf(y.data(), n);
      else ref::gelu_tanh(y.data(), n);
      return dot(y, r);
    };
    std::vector<float> dx(static_cast<size_t>(n));
    if (exact) ref::gelu_erf_backward(gate.data(), r.data(), dx.data(), n);
    else ref::gelu_tanh_backward(gate.data(), r.data(), dx.data(), n);
    expect_gradient(gate, dx, loss, exact ? "gelu_erf dx" : "gelu_tanh dx");
  }
}

TEST(ReferenceGrad, Embedding) {
  std::mt19937 rng(5);
  const int64_t vocab = 6, d = 4, tokens = 5;
  auto table = random_values(size_t(vocab * d), rng);
  const std::vector<int32_t> ids = {2, 0, 2, 5, 2};  // repeats accumulate
  const auto r = random_values(size_t(tokens * d), rng);
  auto loss = [&] {
    double s = 0;
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < d; ++j) s += double(table[size_t(ids[size_t(t)] * d + j)]) * r[size_t(t * d + j)];
    return s;
  };
  std::vector<float> dtable(table.size(), 0.0f);
  ref::embedding_backward(ids.data(), tokens, d, r.data(), dtable.data());
  expect_gradient(table, dtable, loss, "embedding dtable");
}

TEST(ReferenceGrad, CausalAttentionWithGroupedHeads) {
  std::mt19937 rng(6);
  const int64_t t = 5, heads = 4, kv_heads = 2, head_dim = 3;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  auto q = random_values(size_t(t * heads * head_dim), rng), k = random_values(size_t(t * kv_heads * head_dim), rng),
       v = random_values(size_t(t * kv_heads * head_dim), rng);
  const auto r = random_values(q.size(), rng);
  std::vector<float> out(q.size());
  auto loss = [&] {
    ref::causal_attention(q.data(), k.data(), v.data(), t, heads, kv_heads, head_dim, scale, out.data());
    return dot(out, r);
  };
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  ref::causal_attention_backward(q.data(), k.data(), v.data(), r.data(), t, heads, kv_heads, head_dim, scale, dq.data(),
                                 dk.data(), dv.data());
  expect_gradient(q, dq, loss, "attention dq");
  expect_gradient(k, dk, loss, "attention dk");
  expect_gradient(v, dv, loss, "attention dv");
  // Causality: the first query sees only the first key, so out[0] is v[0] of its kv head.
  loss();
  for (int64_t e = 0; e < head_dim; ++e) EXPECT_FLOAT_EQ(out[size_t(e)], v[size_t(e)]);
}

TEST(ReferenceGrad, ChunkedCrossEntropyEqualsWholeVocabulary) {
  std::mt19937 rng(7);
  const int64_t t = 4, d = 6, vocab = 23;
  auto h = random_values(size_t(t * d), rng), w = random_values(size_t(vocab * d), rng);
  const std::vector<int32_t> targets = {3, -1, 22, 0};  // -1: padding, ignored
  std::vector<float> dh(h.size()), dw(w.size(), 0.0f);
  const double loss = ref::cross_entropy_head(h.data(), t, d, w.data(), vocab, targets.data(), 5, dh.data(), dw.data());
  // The same loss from whole logits rows, in double.
  double want = 0;
  for (int64_t i : {0, 2, 3}) {
    std::vector<double> logits(static_cast<size_t>(vocab));
    double max_logit = -INFINITY;
    for (int64_t v = 0; v < vocab; ++v) {
      for (int64_t e = 0; e < d; ++e) logits[size_t(v)] += double(h[size_t(i * d + e)]) * w[size_t(v * d + e)];
      max_logit = std::max(max_logit, logits[size_t(v)]);
    }
    double sum = 0;
    for (double l : logits) sum += std::exp(l - max_logit);
    want += max_logit + std::log(sum) - logits[size_t(targets[size_t(i)])];
  }
  EXPECT_NEAR(loss, want / 3.0, 1e-9);
  for (int64_t e = 0; e < d; ++e) EXPECT_EQ(dh[size_t(1 * d + e)], 0.0f);  // the padding row
  auto f = [&] { return ref::cross_entropy_head(h.data(), t, d, w.data(), vocab, targets.data(), 7, nullptr, nullptr); };
  expect_gradient(h, dh, f, "cross_entropy dh", 1, 1e-3, 1e-4);
  expect_gradient(w, dw, f, "cross_entropy dw", 3, 1e-3, 1e-4);
}

TEST(ReferenceGrad, FeatureDistillationWithAProjection) {
  std::mt19937 rng(9);
  const int64_t t = 3, d = 4, teacher_d = 6;
  auto hs = random_values(size_t(t * d), rng), proj = random_values(size_t(teacher_d * d), rng);
  const auto ht = random_values(size_t(t * teacher_d), rng);
  for (auto kind : {ref::FeatureLoss::Mse, ref::FeatureLoss::Cosine}) {
    const bool mse = kind == ref::FeatureLoss::Mse;
    std::vector<float> dhs(hs.size()), dproj(proj.size(), 0.0f);
    ref::feature_distillation(hs.data(), d, proj.data(), ht.data(), teacher_d, t, kind, dhs.data(), dproj.data());
    auto f = [&] { return ref::feature_distillation(hs.data(), d, proj.data(), ht.data(), teacher_d, t, kind, nullptr, nullptr); };
    expect_gradient(hs, dhs, f, mse ? "feature mse dhs" : "feature cosine dhs", 1, 1e-3, 1e-4);
    expect_gradient(proj, dproj, f, mse ? "feature mse dproj" : "feature cosine dproj", 1, 1e-3, 1e-4);
  }
  // Equal widths without a projection: identical states cost nothing.
  EXPECT_NEAR(ref::feature_distillation(ht.data(), teacher_d, nullptr, ht.data(), teacher_d, t, ref::FeatureLoss::Cosine,
                                        nullptr, nullptr), 0.0, 1e-12);
}

TEST(ReferenceGrad, LogitsDistillationBothDirections) {
  std::mt19937 rng(8);
  const int64_t t = 3, d = 5, teacher_d = 7, vocab = 17;
  auto h = random_values(size_t(t * d), rng), w = random_values(size_t(vocab * d), rng);
  const auto th = random_values(size_t(t * teacher_d), rng), tw = random_values(size_t(vocab * teacher_d), rng);
  const std::vector<int32_t> targets = {4, 16, -1};
  for (auto direction : {ref::KlDirection::Forward, ref::KlDirection::Reverse}) {
    const char* name = direction == ref::KlDirection::Forward ? "forward" : "reverse";
    auto run = [&](float* dh, float* dw, double alpha) {
      return ref::distillation_head(h.data(), w.data(), d, th.data(), tw.data(), teacher_d, t, vocab, targets.data(),
                                    4, alpha, 2.0, direction, dh, dw);
    };
    std::vector<float> dh(h.size()), dw(w.size(), 0.0f);
    const ref::DistillationLoss loss = run(dh.data(), dw.data(), 0.7);
    EXPECT_GT(loss.kl, 0.0) << name;
    EXPECT_NEAR(loss.total, 0.3 * loss.cross_entropy + 0.7 * 4.0 * loss.kl, 1e-12) << name;
    auto f = [&] { return run(nullptr, nullptr, 0.7).total; };
    expect_gradient(h, dh, f, direction == ref::KlDirection::Forward ? "kd forward dh" : "kd reverse dh", 1, 1e-3, 1e-4);
    expect_gradient(w, dw, f, direction == ref::KlDirection::Forward ? "kd forward dw" : "kd reverse dw", 2, 1e-3, 1e-4);
    // alpha 0 is plain cross-entropy over the same tokens.
    EXPECT_NEAR(run(nullptr, nullptr, 0.0).total,
                ref::cross_entropy_head(h.data(), t, d, w.data(), vocab, targets.data(), 5, nullptr, nullptr), 1e-9);
  }
  // A student equal to its teacher has zero KL in both directions.
  const auto same = ref::distillation_head(h.data(), w.data(), d, h.data(), w.data(), d, t, vocab, targets.data(), 3,
                                           1.0, 1.5, ref::KlDirection::Reverse, nullptr, nullptr);
  EXPECT_NEAR(same.kl, 0.0, 1e-12);
}

}  // namespace
}  // namespace brisk
