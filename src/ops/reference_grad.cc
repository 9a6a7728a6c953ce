// The scalar reference backward passes of ops/reference_grad.h.
#include "ops/reference_grad.h"

#include "ops/reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace brisk::ref {

void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) {
      double sum = 0;
      for (int64_t o = 0; o < n; ++o) sum += double(dy[i * n + o]) * w[o * k + j];
      dx[i * k + j] = float(sum);
    }
  for (int64_t o = 0; o < n; ++o) {
    for (int64_t j = 0; j < k; ++j) {
      double sum = 0;
      for (int64_t i = 0; i < m; ++i) sum += double(dy[i * n + o]) * x[i * k + j];
      dw[o * k + j] += float(sum);
    }
    if (db) {
      double sum = 0;
      for (int64_t i = 0; i < m; ++i) sum += dy[i * n + o];
      db[o] += float(sum);
    }
  }
}

void rms_norm_backward(const float* x, const float* weight, int64_t rows, int64_t d, float eps, const float* dy,
                       float* dx, float* dweight) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    const float* g = dy + r * d;
    double squares = 0, dot = 0;  // dot: sum of (dy * weight) * x
    for (int64_t j = 0; j < d; ++j) {
      squares += double(xr[j]) * xr[j];
      dot += double(g[j]) * weight[j] * xr[j];
    }
    const double inv = 1.0 / std::sqrt(squares / double(d) + eps);
    for (int64_t j = 0; j < d; ++j) {
      dx[r * d + j] = float(inv * g[j] * weight[j] - inv * inv * inv * xr[j] * dot / double(d));
      dweight[j] += float(double(g[j]) * xr[j] * inv);
    }
  }
}

void layer_norm_backward(const float* x, const float* weight, int64_t rows, int64_t d, float eps, const float* dy,
                         float* dx, float* dweight, float* dbias) {
  std::vector<double> normalized(static_cast<size_t>(d));
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    const float* g = dy + r * d;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += xr[j];
    mean /= double(d);
    for (int64_t j = 0; j < d; ++j) var += (xr[j] - mean) * (xr[j] - mean);
    const double inv = 1.0 / std::sqrt(var / double(d) + eps);
    double mean_g = 0, mean_g_norm = 0;  // of dy * weight, and of that times the normalized x
    for (int64_t j = 0; j < d; ++j) {
      normalized[size_t(j)] = (xr[j] - mean) * inv;
      const double gw = double(g[j]) * weight[j];
      mean_g += gw;
      mean_g_norm += gw * normalized[size_t(j)];
    }
    mean_g /= double(d);
    mean_g_norm /= double(d);
    for (int64_t j = 0; j < d; ++j) {
      const double gw = double(g[j]) * weight[j];
      dx[r * d + j] = float(inv * (gw - mean_g - normalized[size_t(j)] * mean_g_norm));
      dweight[j] += float(g[j] * normalized[size_t(j)]);
      dbias[j] += g[j];
    }
  }
}

void rope_backward(float* dx, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                   const float* cos_table, const float* sin_table) {
  // The transpose of a rotation by angle a is the rotation by -a: ref::rope with sin negated.
  const int64_t half = head_dim / 2;
  int64_t last = 0;
  for (int64_t r = 0; r < rows; ++r) last = std::max<int64_t>(last, positions[r]);
  std::vector<float> negated_sin(size_t((last + 1) * half));
  for (size_t i = 0; i < negated_sin.size(); ++i) negated_sin[i] = -sin_table[i];
  rope(dx, rows, n_heads, head_dim, positions, cos_table, negated_sin.data());
}

void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i], sigmoid = 1.0 / (1.0 + std::exp(-g));
    dgate[i] = float(dout[i] * up[i] * sigmoid * (1.0 + g * (1.0 - sigmoid)));
    dup[i] = float(dout[i] * g * sigmoid);
  }
}

void gelu_erf_backward(const float* x, const float* dy, float* dx, int64_t n) {
  constexpr double kInvSqrt2 = 0.70710678118654752440, kInvSqrt2Pi = 0.39894228040143267794;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double cdf = 0.5 * (1.0 + std::erf(v * kInvSqrt2)), pdf = kInvSqrt2Pi * std::exp(-0.5 * v * v);
    dx[i] = float(dy[i] * (cdf + v * pdf));
  }
}

void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n) {
  constexpr double kSqrt2OverPi = 0.7978845608028654, kCubic = 0.044715;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double t = std::tanh(kSqrt2OverPi * (v + kCubic * v * v * v));
    const double slope = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * kSqrt2OverPi * (1.0 + 3.0 * kCubic * v * v);
    dx[i] = float(dy[i] * slope);
  }
}

void embedding_backward(const int32_t* ids, int64_t tokens, int64_t d, const float* dy, float* dtable) {
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < d; ++j) dtable[int64_t(ids[t]) * d + j] += dy[t * d + j];
}

namespace {

double row_dot(const float* a, const float* b, int64_t d) {
  double s = 0;
  for (int64_t e = 0; e < d; ++e) s += double(a[e]) * b[e];
  return s;
}

// Softmax over keys 0..i of query i, head h (kv head kvh): p[0..i].
void attention_probabilities(const float* q, const float* k, int64_t i, int64_t h, int64_t kvh, int64_t n_heads,
                             int64_t n_kv_heads, int64_t head_dim, float scale, std::vector<double>& p) {
  const float* qi = q + (i * n_heads + h) * head_dim;
  p.assign(size_t(i + 1), 0.0);
  double max_score = -INFINITY;
  for (int64_t j = 0; j <= i; ++j) {
    p[size_t(j)] = row_dot(qi, k + (j * n_kv_heads + kvh) * head_dim, head_dim) * scale;
    max_score = std::max(max_score, p[size_t(j)]);
  }
  double sum = 0;
  for (double& s : p) sum += (s = std::exp(s - max_score));
  for (double& s : p) s /= sum;
}

// log-sum-exp of logit(v) / temperature over the vocabulary, a running max and sum carried from
// chunk to chunk.
template <class Logit>
double chunked_lse(const Logit& logit, int64_t vocab, int64_t chunk, double temperature) {
  double max_value = -INFINITY, sum = 0;
  std::vector<double> values;
  for (int64_t first = 0; first < vocab; first += chunk) {
    values.clear();
    double chunk_max = -INFINITY;
    for (int64_t v = first; v < std::min(vocab, first + chunk); ++v) {
      values.push_back(logit(v) / temperature);
      chunk_max = std::max(chunk_max, values.back());
    }
    const double new_max = std::max(max_value, chunk_max);
    sum *= std::exp(max_value - new_max);
    for (double x : values) sum += std::exp(x - new_max);
    max_value = new_max;
  }
  return max_value + std::log(sum);
}

}  // namespace

void causal_attention(const float* q, const float* k, const float* v, int64_t t, int64_t n_heads, int64_t n_kv_heads,
                      int64_t head_dim, float scale, float* out) {
  const int64_t group = n_heads / n_kv_heads;
  std::vector<double> p;
  for (int64_t i = 0; i < t; ++i)
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kvh = h / group;
      attention_probabilities(q, k, i, h, kvh, n_heads, n_kv_heads, head_dim, scale, p);
      for (int64_t e = 0; e < head_dim; ++e) {
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += p[size_t(j)] * v[(j * n_kv_heads + kvh) * head_dim + e];
        out[(i * n_heads + h) * head_dim + e] = float(sum);
      }
    }
}

void causal_attention_backward(const float* q, const float* k, const float* v, const float* dout, int64_t t,
                               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* dq,
                               float* dk, float* dv) {
  const int64_t group = n_heads / n_kv_heads;
  const size_t kv_size = size_t(t * n_kv_heads * head_dim);
  std::vector<double> dk_sum(kv_size, 0.0), dv_sum(kv_size, 0.0), p, dp;
  for (int64_t i = 0; i < t; ++i)
    for (int64_t h = 0; h < n_heads; ++h) {
      const int64_t kvh = h / group;
      attention_probabilities(q, k, i, h, kvh, n_heads, n_kv_heads, head_dim, scale, p);
      const float* go = dout + (i * n_heads + h) * head_dim;
      const float* qi = q + (i * n_heads + h) * head_dim;
      dp.assign(size_t(i + 1), 0.0);
      double weighted = 0;  // sum_j p_j dp_j
      for (int64_t j = 0; j <= i; ++j) {
        const int64_t row = (j * n_kv_heads + kvh) * head_dim;
        for (int64_t e = 0; e < head_dim; ++e) {
          dp[size_t(j)] += double(go[e]) * v[row + e];
          dv_sum[size_t(row + e)] += p[size_t(j)] * go[e];
        }
        weighted += p[size_t(j)] * dp[size_t(j)];
      }
      std::vector<double> dqi(static_cast<size_t>(head_dim), 0.0);
      for (int64_t j = 0; j <= i; ++j) {
        const double ds = p[size_t(j)] * (dp[size_t(j)] - weighted) * scale;  // d score, scale folded in
        const int64_t row = (j * n_kv_heads + kvh) * head_dim;
        for (int64_t e = 0; e < head_dim; ++e) {
          dqi[size_t(e)] += ds * k[row + e];
          dk_sum[size_t(row + e)] += ds * qi[e];
        }
      }
      for (int64_t e = 0; e < head_dim; ++e) dq[(i * n_heads + h) * head_dim + e] = float(dqi[size_t(e)]);
    }
  for (size_t i = 0; i < kv_size; ++i) {
    dk[i] = float(dk_sum[i]);
    dv[i] = float(dv_sum[i]);
  }
}

double cross_entropy_head(const float* h, int64_t t, int64_t d, const float* w, int64_t vocab, const int32_t* targets,
                          int64_t chunk, float* dh, float* dw) {
  auto logit = [&](int64_t token, int64_t row) { return row_dot(h + token * d, w + row * d, d); };
  int64_t counted = 0;
  for (int64_t i = 0; i < t; ++i) counted += targets[i] >= 0;
  if (dh) std::fill(dh, dh + t * d, 0.0f);
  if (counted == 0) return 0.0;
  // Pass 1: log-sum-exp per token over the chunks.
  std::vector<double> lse(static_cast<size_t>(t), 0.0);
  double loss = 0;
  for (int64_t i = 0; i < t; ++i) {
    if (targets[i] < 0) continue;
    lse[size_t(i)] = chunked_lse([&](int64_t row) { return logit(i, row); }, vocab, chunk, 1.0);
    loss += lse[size_t(i)] - logit(i, targets[i]);
  }
  loss /= double(counted);
  if (!dh && !dw) return loss;
  // Pass 2: the gradient of each logit, softmax - one-hot, over the tokens counted.
  for (int64_t first = 0; first < vocab; first += chunk) {
    const int64_t last = std::min(vocab, first + chunk);
    for (int64_t i = 0; i < t; ++i) {
      if (targets[i] < 0) continue;
      for (int64_t row = first; row < last; ++row) {
        const double g = (std::exp(logit(i, row) - lse[size_t(i)]) - (row == targets[i] ? 1.0 : 0.0)) / double(counted);
        for (int64_t e = 0; e < d; ++e) {
          if (dh) dh[i * d + e] += float(g * w[row * d + e]);
          if (dw) dw[row * d + e] += float(g * h[i * d + e]);
        }
      }
    }
  }
  return loss;
}


DistillationLoss distillation_head(const float* h, const float* w, int64_t d, const float* teacher_h,
                                   const float* teacher_w, int64_t teacher_d, int64_t t, int64_t vocab,
                                   const int32_t* targets, int64_t chunk, double alpha, double temperature,
                                   KlDirection direction, float* dh, float* dw) {
  DistillationLoss loss;
  if (dh) std::fill(dh, dh + t * d, 0.0f);
  int64_t counted = 0;
  for (int64_t i = 0; i < t; ++i) counted += targets[i] >= 0;
  if (counted == 0) return loss;
  const double scale = 1.0 / double(counted);
  for (int64_t i = 0; i < t; ++i) {
    if (targets[i] < 0) continue;
    auto student = [&](int64_t v) { return row_dot(h + i * d, w + v * d, d); };
    auto teacher = [&](int64_t v) { return row_dot(teacher_h + i * teacher_d, teacher_w + v * teacher_d, teacher_d); };
    // Pass 1: the three normalizers (student at 1 and at T, teacher at T).
    const double lse = chunked_lse(student, vocab, chunk, 1.0);
    const double lse_s = chunked_lse(student, vocab, chunk, temperature);
    const double lse_t = chunked_lse(teacher, vocab, chunk, temperature);
    // Pass 2: this token's KL (the reverse direction's gradient needs it).
    double kl = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      const double log_q = student(v) / temperature - lse_s, log_p = teacher(v) / temperature - lse_t;
      kl += direction == KlDirection::Forward ? std::exp(log_p) * (log_p - log_q) : std::exp(log_q) * (log_q - log_p);
    }
    loss.cross_entropy += (lse - student(targets[i])) * scale;
    loss.kl += kl * scale;
    if (!dh && !dw) continue;
    // Pass 3: d loss / d student logit, then through the head.
    for (int64_t v = 0; v < vocab; ++v) {
      const double z = student(v);
      const double log_q = z / temperature - lse_s, log_p = teacher(v) / temperature - lse_t;
      const double q = std::exp(log_q), p = std::exp(log_p);
      const double ce = std::exp(z - lse) - (v == targets[i] ? 1.0 : 0.0);
      const double kd = direction == KlDirection::Forward ? q - p : q * (log_q - log_p - kl);
      const double g = scale * ((1.0 - alpha) * ce + alpha * temperature * kd);  // T^2 * (1/T) on the KD term
      for (int64_t e = 0; e < d; ++e) {
        if (dh) dh[i * d + e] += float(g * w[v * d + e]);
        if (dw) dw[v * d + e] += float(g * h[i * d + e]);
      }
    }
  }
  loss.total = (1.0 - alpha) * loss.cross_entropy + alpha * temperature * temperature * loss.kl;
  return loss;
}

double feature_distillation(const float* hs, int64_t d, const float* proj, const float* ht, int64_t teacher_d,
                            int64_t t, FeatureLoss kind, float* dhs, float* dproj) {
  double loss = 0;
  std::vector<double> y(static_cast<size_t>(teacher_d)), dy(static_cast<size_t>(teacher_d));
  for (int64_t i = 0; i < t; ++i) {
    const float* x = hs + i * d;
    const float* target = ht + i * teacher_d;
    for (int64_t j = 0; j < teacher_d; ++j) y[size_t(j)] = proj ? row_dot(proj + j * d, x, d) : x[j];
    if (kind == FeatureLoss::Mse) {
      const double norm = 1.0 / double(t * teacher_d);
      for (int64_t j = 0; j < teacher_d; ++j) {
        const double diff = y[size_t(j)] - target[j];
        loss += diff * diff * norm;
        dy[size_t(j)] = 2.0 * diff * norm;
      }
    } else {
      double yy = 0, tt = 0, yt = 0;
      for (int64_t j = 0; j < teacher_d; ++j) {
        yy += y[size_t(j)] * y[size_t(j)];
        tt += double(target[j]) * target[j];
        yt += y[size_t(j)] * target[j];
      }
      const double ny = std::sqrt(yy), nt = std::sqrt(tt), norm = 1.0 / double(t);
      loss += (1.0 - yt / (ny * nt)) * norm;
      for (int64_t j = 0; j < teacher_d; ++j)
        dy[size_t(j)] = -norm * (target[j] / (ny * nt) - yt * y[size_t(j)] / (ny * ny * ny * nt));
    }
    for (int64_t k = 0; k < d && dhs; ++k) {
      double s = 0;
      for (int64_t j = 0; j < teacher_d; ++j) s += dy[size_t(j)] * (proj ? proj[j * d + k] : (j == k ? 1.0 : 0.0));
      dhs[i * d + k] = float(s);
    }
    if (dproj)
      for (int64_t j = 0; j < teacher_d; ++j)
        for (int64_t k = 0; k < d; ++k) dproj[j * d + k] += float(dy[size_t(j)] * x[k]);
  }
  return loss;
}

}  // namespace brisk::ref
