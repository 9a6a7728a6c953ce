// Scalar reference backward passes (issue 21, training and distillation): the oracle that CPU and
// CUDA training kernels will be tested against, itself checked by finite differences
// (tests/grad_test.cc). Plain loops, double accumulation.
//
// Conventions: `d<name>` is the gradient of the loss with respect to <name>. Gradients of inputs
// are written (=); gradients of parameters are added (+=), so micro-batches accumulate into one
// step's gradient. Shapes follow the forward ops in ops/reference.h.
#pragma once

#include <cstdint>

namespace brisk::ref {

// y[m, n] = x[m, k] w[n, k]^T (+ b[n]): dx = dy w; dw += dy^T x; db += column sums of dy (db may be
// null when there is no bias).
void linear_backward(const float* x, int64_t m, int64_t k, const float* w, int64_t n, const float* dy, float* dx,
                     float* dw, float* db);

// y = x / rms(x) * weight per row of d.
void rms_norm_backward(const float* x, const float* weight, int64_t rows, int64_t d, float eps, const float* dy,
                       float* dx, float* dweight);
// y = (x - mean) / sqrt(var + eps) * weight + bias per row of d.
void layer_norm_backward(const float* x, const float* weight, int64_t rows, int64_t d, float eps, const float* dy,
                         float* dx, float* dweight, float* dbias);

// The rotation of ref::rope is orthogonal: its gradient is the inverse rotation, in place on dx
// ([rows, n_heads, head_dim], the same tables and positions).
void rope_backward(float* dx, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* positions,
                   const float* cos_table, const float* sin_table);

// out = silu(gate) * up.
void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n);
// y = gelu(x), exact (erf) and tanh-approximated (GPT-2's gelu_new).
void gelu_erf_backward(const float* x, const float* dy, float* dx, int64_t n);
void gelu_tanh_backward(const float* x, const float* dy, float* dx, int64_t n);

// y[t] = table[ids[t]] (rows of d): dtable[ids[t]] += dy[t].
void embedding_backward(const int32_t* ids, int64_t tokens, int64_t d, const float* dy, float* dtable);

// Causal self-attention over one contiguous sequence of t tokens with grouped KV heads (query head
// h reads kv head h / (n_heads / n_kv_heads)): q, out [t, n_heads, head_dim]; k, v [t, n_kv_heads,
// head_dim]; score = q.k * scale. The forward for training (the decoder's paged kernel reads a
// cache; training sees the whole sequence at once).
void causal_attention(const float* q, const float* k, const float* v, int64_t t, int64_t n_heads, int64_t n_kv_heads,
                      int64_t head_dim, float scale, float* out);
// Its gradient: softmax rows recomputed from q and k (nothing [t, t] is kept), dq written, dk and
// dv written (summed over the query heads that share them).
void causal_attention_backward(const float* q, const float* k, const float* v, const float* dout, int64_t t,
                               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float* dq,
                               float* dk, float* dv);

// Mean cross-entropy of next-token targets through the output head, chunk by chunk over the
// vocabulary: logits = h[t, d] w[vocab, d]^T are never held for the whole vocabulary (a running
// log-sum-exp per token over chunks of `chunk` rows of w, then a second pass for the gradient).
// Tokens whose target is negative are ignored (padding). Returns the loss; dh is written, dw
// added to. Either gradient may be null (only the loss).
double cross_entropy_head(const float* h, int64_t t, int64_t d, const float* w, int64_t vocab, const int32_t* targets,
                          int64_t chunk, float* dh, float* dw);

// Logits distillation through both output heads, chunk by chunk over the shared vocabulary:
//   L = (1 - alpha) * CE(student) + alpha * T^2 * KL, averaged over the tokens with a target,
// KL = KL(p_teacher^T || p_student^T) (Forward, Hinton et al. 2015) or KL(p_student^T ||
// p_teacher^T) (Reverse, MiniLLM), p^T the softmax of logits / T. Student logits are h[t, d] w^T,
// teacher logits teacher_h[t, teacher_d] teacher_w^T; neither [t, vocab] is ever held. dh is
// written and dw added to (either may be null); the teacher gets no gradient.
enum class KlDirection { Forward, Reverse };
struct DistillationLoss {
  double total = 0, cross_entropy = 0, kl = 0;  // kl: the mean KL, before alpha and T^2
};
DistillationLoss distillation_head(const float* h, const float* w, int64_t d, const float* teacher_h,
                                   const float* teacher_w, int64_t teacher_d, int64_t t, int64_t vocab,
                                   const int32_t* targets, int64_t chunk, double alpha, double temperature,
                                   KlDirection direction, float* dh, float* dw);

// Feature distillation between a student hidden state hs[t, d] and a teacher's ht[t, teacher_d]:
// y = hs proj^T (proj [teacher_d, d], learned, when the widths differ; null: identity, d equal),
//   Mse:    L = mean over tokens and features of (y - ht)^2
//   Cosine: L = mean over tokens of 1 - cos(y, ht)
// Returns L; dhs written, dproj added to (either may be null).
enum class FeatureLoss { Mse, Cosine };
double feature_distillation(const float* hs, int64_t d, const float* proj, const float* ht, int64_t teacher_d,
                            int64_t t, FeatureLoss kind, float* dhs, float* dproj);

}  // namespace brisk::ref
