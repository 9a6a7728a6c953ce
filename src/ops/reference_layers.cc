// Scalar references for everything but matmul (see reference.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/reference.h"

namespace brisk::ref {

void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
    float inv = float(1.0 / std::sqrt(ss / double(d) + eps));
    for (int64_t i = 0; i < d; ++i) y[r * d + i] = weight[i] * (xr[i] * inv);
  }
}

void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t d,
                float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * d;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += xr[i];
    mean /= double(d);
    for (int64_t i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= double(d);
    float inv = float(1.0 / std::sqrt(var + eps));
    for (int64_t i = 0; i < d; ++i)
      y[r * d + i] = float(xr[i] - mean) * inv * weight[i] + (bias ? bias[i] : 0.0f);
  }
}

void rope(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const float* cos_table, const float* sin_table) {
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos_table + int64_t(positions[r]) * half;
    const float* s = sin_table + int64_t(positions[r]) * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = x + (r * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
              const KvPools& kv) {
  const size_t elem = kv_element_bytes(kv.dtype);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < kv.n_kv_heads; ++h) {
      const int64_t head_row = int64_t(slots[r]) * kv.n_kv_heads + h;  // index of the (slot, head) row
      const size_t at = size_t(head_row * kv.head_dim) * elem;
      const int64_t src = r * src_stride + h * kv.head_dim;
      const float k_scale = kv_quantize_row(k + src, kv.head_dim, kv.dtype, static_cast<char*>(kv.k) + at);
      const float v_scale = kv_quantize_row(v + src, kv.head_dim, kv.dtype, static_cast<char*>(kv.v) + at);
      if (kv_has_scales(kv.dtype)) {
        kv.k_scales[head_row] = k_scale;
        kv.v_scales[head_row] = v_scale;
      }
    }
}

namespace {
// Head row `head_row` of one pool as fp32.
void load_head_row(const void* pool, const float* scales, const KvPools& kv, int64_t head_row, float* out) {
  const size_t at = size_t(head_row * kv.head_dim) * kv_element_bytes(kv.dtype);
  kv_dequantize_row(static_cast<const char*>(pool) + at, kv.head_dim, kv.dtype,
                    kv_has_scales(kv.dtype) ? scales[head_row] : 1.0f, out);
}
}  // namespace

void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch, int64_t n_heads,
               const AttentionParams& params) {
  const int64_t n_kv_heads = kv.n_kv_heads, head_dim = kv.head_dim;
  const int64_t group = n_heads / n_kv_heads;
  std::vector<double> scores;
  std::vector<float> keys, values;  // [n_keys, head_dim] of one kv head, dequantized
  for (int64_t s = 0; s < batch.n_seqs; ++s) {
    const SequenceSpan& seq = batch.host_seqs[s];
    const int32_t* table = batch.host_block_tables + seq.table_offset;
    auto slot = [&](int64_t p) { return table[p / batch.block_size] * batch.block_size + p % batch.block_size; };
    for (int64_t i = 0; i < seq.n_rows; ++i) {
      const int64_t r = seq.first_row + i;
      const int64_t pos = seq.first_pos + i, first = params.first_key(pos);
      const int64_t n_keys = params.end_key(pos, seq.first_pos + seq.n_rows) - first;
      scores.assign(size_t(n_keys), 0.0);
      keys.resize(size_t(n_keys * head_dim));
      values.resize(size_t(n_keys * head_dim));
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t kvh = h / group;
        for (int64_t j = 0; j < n_keys; ++j) {
          load_head_row(kv.k, kv.k_scales, kv, slot(first + j) * n_kv_heads + kvh, keys.data() + j * head_dim);
          load_head_row(kv.v, kv.v_scales, kv, slot(first + j) * n_kv_heads + kvh, values.data() + j * head_dim);
        }
        const float* qh = q + (r * n_heads + h) * head_dim;
        double max_score = -INFINITY;
        for (int64_t j = 0; j < n_keys; ++j) {
          const float* kj = keys.data() + j * head_dim;
          double dot = 0;
          for (int64_t e = 0; e < head_dim; ++e) dot += double(qh[e]) * kj[e];
          double score = dot * params.scale;
          if (params.softcap > 0) score = params.softcap * std::tanh(score / params.softcap);
          scores[size_t(j)] = score;
          max_score = std::max(max_score, scores[size_t(j)]);
        }
        double sum = 0;
        for (auto& sc : scores) sum += (sc = std::exp(sc - max_score));
        float* oh = out + (r * n_heads + h) * head_dim;
        for (int64_t e = 0; e < head_dim; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < n_keys; ++j) acc += scores[size_t(j)] * values[size_t(j * head_dim + e)];
          oh[e] = float(acc / sum);
        }
      }
    }
  }
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void gelu_tanh(float* x, int64_t n) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void mul(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= y[i];
}

void scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void gelu_erf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void soft_cap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

}  // namespace brisk::ref
