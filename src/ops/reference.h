// Scalar reference implementations of every op: the oracle that SIMD/threaded/GPU kernels are
// tested against. Plain loops, fp32 (or wider) accumulation, no cleverness.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ops/backend.h"
#include "ops/sampling.h"

namespace brisk::ref {

// y[m, n] = sum_k x[m, k] * w[n, k] (+ bias[n]). x, y fp32 row-major; w is [n, k] in any float
// dtype (F32/F16/BF16) or a block format (core/quant_blocks.h; Q8A8 also quantizes each row of
// x per token). Accumulates in double.
void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y);

// The numerics of the integer kernels for weight-only block formats (Q8, Q4, NF4, LOG4): each
// row of x quantized to int8 per kActivationBlock values (quantize_activation_blocks), codebook
// levels as their int8 approximations (int8_codebook). Accumulates in double.
void matmul_int8_activations(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y);

// y = x / rms(x) * weight, per row of length d.
void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps, float* y);
// y = (x - mean) / sqrt(var + eps) * weight + bias, per row of length d.
void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t d,
                float eps, float* y);

// Rotary embedding, "rotate half" layout (as transformers' Llama): for each head the pairs are
// (i, i + head_dim/2) rotated by angle pos * inv_freq[i]. x is [rows, n_heads, head_dim], row r at
// position positions[r]; cos_table/sin_table are [n_positions, head_dim/2].
void rope(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const float* cos_table, const float* sin_table);

// kv[slots[r]] = row r of k (and of v): rows of kv.row() floats, src_stride floats apart, each
// head row converted by kv_quantize_row (core/kv_dtype.h).
void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
              const KvPools& kv);

// Causal attention with grouped KV heads for every sequence of a batch (see AttentionBatch in
// ops/backend.h; host arrays are used). q, out: [rows, n_heads, kv.head_dim]; keys and values
// are dequantized to fp32 (kv_dequantize_row) before any arithmetic. A query at position p sees
// keys params.first_key(p) .. p; a score is dot * scale, soft-capped when params.softcap > 0.
void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch, int64_t n_heads,
               const AttentionParams& params);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
void add(float* x, const float* y, int64_t n);  // x += y
void mul(float* x, const float* y, int64_t n);  // x *= y
void scale(float* x, int64_t n, float s);      // x *= s
void soft_cap(float* x, int64_t n, float cap);  // x = cap * tanh(x / cap)
void gelu_erf(float* x, int64_t n);             // exact GELU: x/2 (1 + erf(x / sqrt 2)), in place
// GELU, tanh approximation (GPT-2's "gelu_new"), in place.
void gelu_tanh(float* x, int64_t n);

// Backend::argmax_rows for one row: the first largest logit, or kNonFiniteLogits for a row with a
// NaN or a non-finite maximum.
int32_t argmax_row(const float* logits, int64_t vocab);
// Backend::sample_rows for one row (the steps of ops/sampling.h): applies the allowed mask at
// allowed + params.first_allowed_word (when >= 0) and the penalties listed at
// counts[params.first_count, +params.n_counts) to logits in place and returns the chosen token.
// scratch is working memory the caller keeps between calls (no allocation per token).
int32_t sample_row(float* logits, int64_t vocab, const SampleRowParams& params, const TokenCount* counts,
                   const uint32_t* allowed, std::vector<float>& scratch);

}  // namespace brisk::ref
