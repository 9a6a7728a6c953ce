#include "train/head_losses.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/matmul.h"
#include "backends/cpu/train_gemm.h"
#include "core/error.h"

namespace brisk::train {

namespace {

// A running log-sum-exp over chunks: max and the sum of exp(x - max).
struct OnlineLse {
  double max = -std::numeric_limits<double>::infinity(), sum = 0;

  // Adds exp(z[j] * inv_t) for j < n.
  void add(const float* z, int64_t n, double inv_t) {
    double chunk_max = max;
    for (int64_t j = 0; j < n; ++j) chunk_max = std::max(chunk_max, double(z[j]) * inv_t);
    double s = sum * std::exp(max - chunk_max);
    for (int64_t j = 0; j < n; ++j) s += std::exp(double(z[j]) * inv_t - chunk_max);
    max = chunk_max, sum = s;
  }
  double value() const { return max + std::log(sum); }
};

// logits[tokens, n] = side.h side.w[first : first + n]^T.
void chunk_logits(const HeadSide& side, int64_t tokens, int64_t first, int64_t n, float* out, ThreadPool& pool) {
  const Tensor w{const_cast<float*>(side.w + first * side.d), DType::F32, {n, side.d}};
  cpu::matmul(side.h, tokens, side.d, w, nullptr, out, pool);
}

}  // namespace

ref::DistillationLoss head_loss(const HeadSide& student, const HeadSide* teacher, int64_t tokens, int64_t vocab,
                                const int32_t* targets, const HeadLossOptions& o, float* dh, float* dw,
                                ThreadPool& pool) {
  ref::DistillationLoss loss;
  const bool kd = o.alpha > 0;
  BRISK_CHECK(!kd || teacher, "head_loss: distillation needs the teacher's side");
  if (dh) std::fill(dh, dh + tokens * student.d, 0.0f);
  int64_t counted = 0;
  for (int64_t i = 0; i < tokens; ++i) counted += targets[i] >= 0;
  if (counted == 0) return loss;
  const double scale = 1.0 / double(counted), inv_t = 1.0 / o.temperature;
  const int64_t chunk = std::min(o.chunk, vocab);
  std::vector<float> zs(size_t(tokens * chunk)), zt(kd ? size_t(tokens * chunk) : 0), g;
  std::vector<OnlineLse> lse(static_cast<size_t>(tokens)), lse_s(kd ? size_t(tokens) : 0), lse_t(kd ? size_t(tokens) : 0);
  std::vector<double> target_logit(size_t(tokens), 0.0), kl(size_t(tokens), 0.0);
  auto logits = [&](int64_t first, int64_t n) {  // both models' logits of vocabulary rows first..first+n
    chunk_logits(student, tokens, first, n, zs.data(), pool);
    if (kd) chunk_logits(*teacher, tokens, first, n, zt.data(), pool);
  };

  // Pass 1: the normalizers (student at 1 and at T, teacher at T) and each target's logit.
  for (int64_t first = 0; first < vocab; first += chunk) {
    const int64_t n = std::min(chunk, vocab - first);
    logits(first, n);
    pool.parallel_for(tokens, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        if (targets[i] < 0) continue;
        const float* z = zs.data() + i * n;
        lse[size_t(i)].add(z, n, 1.0);
        if (targets[i] >= first && targets[i] < first + n) target_logit[size_t(i)] = z[targets[i] - first];
        if (!kd) continue;
        lse_s[size_t(i)].add(z, n, inv_t);
        lse_t[size_t(i)].add(zt.data() + i * n, n, inv_t);
      }
    });
  }
  // The normalizers' values, once per token (the passes below read them per logit).
  std::vector<double> norm(lse.size()), norm_s(lse_s.size()), norm_t(lse_t.size());
  for (size_t i = 0; i < norm.size(); ++i) norm[i] = lse[i].value();
  for (size_t i = 0; i < norm_s.size(); ++i) norm_s[i] = lse_s[i].value(), norm_t[i] = lse_t[i].value();
  // log q (the student at T) and log p (the teacher at T) of logit j of row i.
  auto log_q = [&](int64_t i, int64_t n, int64_t j) { return double(zs[size_t(i * n + j)]) * inv_t - norm_s[size_t(i)]; };
  auto log_p = [&](int64_t i, int64_t n, int64_t j) { return double(zt[size_t(i * n + j)]) * inv_t - norm_t[size_t(i)]; };
  // Pass 2: each token's KL (the reverse direction's gradient needs it).
  if (kd)
    for (int64_t first = 0; first < vocab; first += chunk) {
      const int64_t n = std::min(chunk, vocab - first);
      logits(first, n);
      pool.parallel_for(tokens, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          if (targets[i] < 0) continue;
          double sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            const double lq = log_q(i, n, j), lp = log_p(i, n, j);
            sum += o.direction == ref::KlDirection::Forward ? std::exp(lp) * (lp - lq) : std::exp(lq) * (lq - lp);
          }
          kl[size_t(i)] += sum;
        }
      });
    }
  for (int64_t i = 0; i < tokens; ++i) {
    if (targets[i] < 0) continue;
    loss.cross_entropy += (norm[size_t(i)] - target_logit[size_t(i)]) * scale;
    loss.kl += kl[size_t(i)] * scale;
  }
  loss.total = (1.0 - o.alpha) * loss.cross_entropy + o.alpha * o.temperature * o.temperature * loss.kl;
  if (!dh && !dw) return loss;

  // Pass 3: d loss / d logit per chunk, then through the head.
  g.resize(size_t(tokens * chunk));
  std::vector<float> dh_part(dh ? size_t(tokens * student.d) : 0);
  for (int64_t first = 0; first < vocab; first += chunk) {
    const int64_t n = std::min(chunk, vocab - first);
    logits(first, n);
    pool.parallel_for(tokens, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        float* gi = g.data() + i * n;
        if (targets[i] < 0) {
          std::fill(gi, gi + n, 0.0f);
          continue;
        }
        const double l1 = norm[size_t(i)];
        for (int64_t j = 0; j < n; ++j) {
          const double ce = std::exp(double(zs[size_t(i * n + j)]) - l1) - (first + j == targets[i] ? 1.0 : 0.0);
          double kd_grad = 0;
          if (kd) {
            const double lq = log_q(i, n, j), lp = log_p(i, n, j), q = std::exp(lq);
            kd_grad = o.direction == ref::KlDirection::Forward ? q - std::exp(lp) : q * (lq - lp - kl[size_t(i)]);
          }
          // T^2 * (1 / T) on the KD term: d(z / T) / dz.
          gi[j] = float(scale * ((1.0 - o.alpha) * ce + o.alpha * o.temperature * kd_grad));
        }
      }
    });
    if (dh) {
      cpu::linear_input_grad(g.data(), tokens, n, student.w + first * student.d, student.d, dh_part.data(), pool);
      for (size_t e = 0; e < dh_part.size(); ++e) dh[e] += dh_part[e];
    }
    if (dw) cpu::linear_weight_grad(g.data(), tokens, n, student.h, student.d, dw + first * student.d, pool);
  }
  return loss;
}

}  // namespace brisk::train
