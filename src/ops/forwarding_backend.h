// A Backend that passes every op to another one: the base of wrappers that watch or extend a few
// ops (calibration's capture, tensor parallelism's all-reduce) and leave the rest to the backend
// that runs them. Fused ops go to the inner backend's fused kernels; a wrapper that must see
// their parts (each matmul, each norm) overrides them with Backend's unfused defaults.
#pragma once

#include "ops/backend.h"

namespace brisk {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(Backend& inner) : inner_(inner) {}
  Backend& inner() { return inner_; }

  const char* name() const override { return inner_.name(); }
  Device device() const override { return inner_.device(); }
  Buffer allocate(size_t n) override { return inner_.allocate(n); }
  Result<Buffer> try_allocate(size_t n) override { return inner_.try_allocate(n); }
  void release(float* data) override { inner_.release(data); }
  Tensor upload(const Tensor& t) override { return inner_.upload(t); }
  Tensor upload_matrix(const Tensor& t) override { return inner_.upload_matrix(t); }
  void place_adjacent(std::initializer_list<Tensor*> matrices) override { inner_.place_adjacent(matrices); }
  void release_weight(const Tensor& uploaded) override { inner_.release_weight(uploaded); }
  void copy_to_device(float* dst, const float* src, size_t n) override { inner_.copy_to_device(dst, src, n); }
  void copy_to_host(float* dst, const float* src, size_t n) override { inner_.copy_to_host(dst, src, n); }
  void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) override {
    inner_.matmul(x, m, k, w, bias, y);
  }
  void matmul_same_input(const float* x, int64_t m, int64_t k, std::initializer_list<MatmulOutput> outs) override {
    inner_.matmul_same_input(x, m, k, outs);
  }
  void matmul_swiglu(const float* x, int64_t m, int64_t k, const MatmulOutput& gate, const MatmulOutput& up) override {
    inner_.matmul_swiglu(x, m, k, gate, up);
  }
  float* linear_scratch(size_t n_floats) override { return inner_.linear_scratch(n_floats); }
  void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch, int64_t n_heads,
                 const AttentionParams& params) override {
    inner_.attention(q, kv, out, batch, n_heads, params);
  }
  void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
                const KvPools& kv) override {
    inner_.store_kv(k, v, rows, src_stride, slots, kv);
  }
  void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out, Accumulate acc) override {
    inner_.gather_rows(table, ids, n, out, acc);
  }
  void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t cols) override {
    inner_.copy_2d(src, src_stride, dst, dst_stride, rows, cols);
  }
  void rms_norm(const float* x, const float* w, int64_t rows, int64_t d, float eps, float* y) override {
    inner_.rms_norm(x, w, rows, d, eps, y);
  }
  void add_rms_norm(float* x, const float* h, const float* w, int64_t rows, int64_t d, float eps, float* y) override {
    inner_.add_rms_norm(x, h, w, rows, d, eps, y);
  }
  void layer_norm(const float* x, const float* w, const float* b, int64_t rows, int64_t d, float eps,
                  float* y) override {
    inner_.layer_norm(x, w, b, rows, d, eps, y);
  }
  void rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
            const int32_t* positions, const float* cos_table, const float* sin_table) override {
    inner_.rope(q, k, rows, n_heads, n_kv_heads, head_dim, positions, cos_table, sin_table);
  }
  void rope_store_kv(float* q, float* k, const float* v, int64_t rows, int64_t n_heads, const int32_t* positions,
                     const float* cos_table, const float* sin_table, const int32_t* slots, const KvPools& kv) override {
    inner_.rope_store_kv(q, k, v, rows, n_heads, positions, cos_table, sin_table, slots, kv);
  }
  void silu_mul(const float* g, const float* u, float* out, int64_t n) override { inner_.silu_mul(g, u, out, n); }
  void gelu_tanh(float* x, int64_t n) override { inner_.gelu_tanh(x, n); }
  void add(float* x, const float* y, int64_t n) override { inner_.add(x, y, n); }
  void mul(float* x, const float* y, int64_t n) override { inner_.mul(x, y, n); }
  void scale(float* x, int64_t n, float s) override { inner_.scale(x, n, s); }
  void soft_cap(float* x, int64_t n, float cap) override { inner_.soft_cap(x, n, cap); }
  void gelu_erf(float* x, int64_t n) override { inner_.gelu_erf(x, n); }
  void argmax_rows(const float* l, int64_t rows, int64_t vocab, int32_t* ids) override {
    inner_.argmax_rows(l, rows, vocab, ids);
  }
  void sample_rows(float* l, int64_t rows, int64_t vocab, const SampleRowParams* params, const TokenCount* counts,
                   const uint32_t* allowed, int32_t* ids) override {
    inner_.sample_rows(l, rows, vocab, params, counts, allowed, ids);
  }
  bool can_record() const override { return inner_.can_record(); }
  void begin_capture() override { inner_.begin_capture(); }
  std::unique_ptr<Recording> end_capture() override { return inner_.end_capture(); }

 private:
  Backend& inner_;
};

// A ForwardingBackend that sees every weight matrix on its own, as the model loaded it: matrices
// stay row-major (upload, not upload_matrix: their pointers are the model's and their values
// readable), and fused products run as Backend's unfused steps, so each matrix passes through
// matmul(). The base of wrappers that key on a weight's pointer (calibration's capture, brisk
// optimize's format swaps).
class PerMatrixForwardingBackend : public ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  Tensor upload_matrix(const Tensor& t) override { return upload(t); }
  void place_adjacent(std::initializer_list<Tensor*>) override {}
  void matmul_same_input(const float* x, int64_t m, int64_t k, std::initializer_list<MatmulOutput> outs) override {
    Backend::matmul_same_input(x, m, k, outs);
  }
  void matmul_swiglu(const float* x, int64_t m, int64_t k, const MatmulOutput& gate, const MatmulOutput& up) override {
    Backend::matmul_swiglu(x, m, k, gate, up);
  }
};

}  // namespace brisk
