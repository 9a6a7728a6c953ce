// The ops a model forward pass calls, behind one interface per device. Activations are fp32
// buffers in the backend's memory (allocated through it); weights are Tensors in their stored
// dtype, moved to the backend's memory once with upload(). Models call these directly; a backend
// decides threads, SIMD and kernels.
#pragma once

#include <cstdint>
#include <memory>

#include "core/tensor.h"

namespace brisk {

class Backend;

// fp32 device memory owned by a backend (host memory on the CPU backend).
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend* owner, float* data, size_t size) : owner_(owner), data_(data), size_(size) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  Backend* owner_ = nullptr;
  float* data_ = nullptr;
  size_t size_ = 0;
};

enum class Accumulate : bool { No, Yes };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // Memory. Buffers come zero-filled.
  virtual Buffer allocate(size_t n_floats) = 0;
  virtual void release(float* data) = 0;
  // A weight in this backend's memory (the CPU backend uses the mapped original in place).
  virtual Tensor upload(const Tensor& host_tensor) = 0;
  virtual void copy_to_device(float* dst, const float* host_src, size_t n) = 0;
  virtual void copy_to_host(float* host_dst, const float* src, size_t n) = 0;

  // y[m, n] = x[m, k] · w[n, k]^T (+ bias[n]); see ref::matmul.
  virtual void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                      float* y) = 0;

  // Causal attention of `rows` queries at positions first_pos.. over the cache; see ref::attention.
  virtual void attention(const float* q, const float* k_cache, const float* v_cache, float* out,
                         int64_t rows, int64_t first_pos, int64_t n_heads, int64_t n_kv_heads,
                         int64_t head_dim, float scale) = 0;

  // out[r] (+)= table[ids[r]] for r < n, table [rows, d] in any float dtype; ids in host memory.
  virtual void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                           Accumulate accumulate) = 0;
  // dst[r, 0:cols] = src[r, 0:cols] for r < rows, with row strides in floats.
  virtual void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                       int64_t rows, int64_t cols) = 0;

  virtual void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                        float* y) = 0;
  virtual void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows,
                          int64_t d, float eps, float* y) = 0;
  // In place on x [rows, n_heads, head_dim] at positions first_pos..; cos/sin tables are
  // [n_positions, head_dim/2] in this backend's memory.
  virtual void rope(float* x, int64_t first_pos, int64_t rows, int64_t n_heads, int64_t head_dim,
                    const float* cos_table, const float* sin_table) = 0;
  virtual void silu_mul(const float* gate, const float* up, float* out, int64_t n) = 0;
  virtual void gelu_tanh(float* x, int64_t n) = 0;
  virtual void add(float* x, const float* y, int64_t n) = 0;  // x += y
};

}  // namespace brisk
