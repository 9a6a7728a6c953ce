// The CPU backend: SIMD matmul and attention on a thread pool; the light element-wise ops use the
// scalar references, which cost little next to the matmuls.
#pragma once

#include "backends/cpu/matmul.h"
#include "core/thread_pool.h"
#include <vector>

#include "ops/backend.h"

namespace brisk {

// Where weights live. Resident copies them into anonymous memory backed by transparent huge
// pages: page-cache mappings use 4 KiB pages, and the TLB misses cost decode ~30% of its
// bandwidth (tinyllama-1.1b bf16, 2 threads: 41 -> 55 GB/s). Mapped reads the file in place
// (no copy, faster start, less memory when several processes share the file).
enum class WeightPlacement { Resident, Mapped };

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads, cpu::Bf16Math bf16_math = cpu::Bf16Math::Exact,
                      WeightPlacement placement = WeightPlacement::Resident)
      : pool_(n_threads), bf16_math_(bf16_math), placement_(placement) {}
  ~CpuBackend() override;
  const char* name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  ThreadPool& pool() { return pool_; }

  Buffer allocate(size_t n_floats) override;
  void release(float* data) override;
  Tensor upload(const Tensor& host_tensor) override;
  // Under --bf16-fast, BF16 matrices go in the outer-product tiles' layout (BlockOrder::Bf16Pairs).
  Tensor upload_matrix(const Tensor& host_tensor) override;
  void copy_to_device(float* dst, const float* host_src, size_t n) override;
  void copy_to_host(float* host_dst, const float* src, size_t n) override;

  void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
              float* y) override;
  void matmul_same_input(const float* x, int64_t m, int64_t k, std::initializer_list<MatmulOutput> outs) override;
  void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                   Accumulate accumulate) override;
  void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t cols) override;
  void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch,
                 int64_t n_heads, const AttentionParams& params) override;
  void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
                const KvPools& kv) override;
  void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                float* y) override;
  // The residual add and the norm row by row in one parallel job (the base class adds on one thread).
  void add_rms_norm(float* x, const float* h, const float* weight, int64_t rows, int64_t d, float eps,
                    float* y) override;
  void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t d,
                  float eps, float* y) override;
  void rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
            const int32_t* positions, const float* cos_table, const float* sin_table) override;
  // Each thread rotates its rows and stores their keys and values (the base class stores on one thread).
  void rope_store_kv(float* q, float* k, const float* v, int64_t rows, int64_t n_heads,
                     const int32_t* positions, const float* cos_table, const float* sin_table,
                     const int32_t* slots, const KvPools& kv) override;
  void silu_mul(const float* gate, const float* up, float* out, int64_t n) override;
  void gelu_tanh(float* x, int64_t n) override;
  void add(float* x, const float* y, int64_t n) override;
  void mul(float* x, const float* y, int64_t n) override;
  void scale(float* x, int64_t n, float s) override;
  void soft_cap(float* x, int64_t n, float cap) override;
  void gelu_erf(float* x, int64_t n) override;
  void argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids) override;
  void sample_rows(float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                   const TokenCount* counts, const uint32_t* allowed, int32_t* ids) override;

 private:
  void* reserve(size_t n_bytes);  // 64-byte aligned room in the weight chunks

  ThreadPool pool_;
  cpu::Bf16Math bf16_math_;
  WeightPlacement placement_;
  std::vector<float> sample_scratch_;  // ref::sample_row's working memory, kept between steps
  // Resident weights: large huge-page-backed chunks, bump-allocated.
  struct Chunk {
    uint8_t* data;
    size_t size, used;
  };
  std::vector<Chunk> weight_chunks_;
};

}  // namespace brisk
