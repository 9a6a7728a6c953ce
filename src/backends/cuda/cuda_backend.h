// The CUDA backend: activations are fp32 device buffers, weights are uploaded once in their stored
// dtype (F32/F16/BF16, or a quantized block dtype repacked for the GPU: quant_layout.h), and every
// op is enqueued on one stream that the backend owns. Only copy_to_host waits for the device. This
// header compiles without nvcc (the CUDA handle types are forward-declared), so CPU-only code can
// name the class and call the factory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/error.h"
#include "ops/backend.h"

// The runtime's own opaque handle structs; cudaStream_t is CUstream_st*.
struct CUstream_st;

namespace brisk {

namespace cuda {
class MatmulEngine;  // cuBLASLt handle, workspace, plan cache (matmul.cuh)
class Scratch;       // a growable device buffer (cuda_common.cuh)
}  // namespace cuda

class CudaBackend final : public Backend {
 public:
  // Fails with a message when there is no device, the index is out of range, or the device cannot
  // be set up (out of memory for the workspace, a broken driver).
  static Result<std::unique_ptr<CudaBackend>> create(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  Device device() const override { return Device::CUDA; }
  int device_index() const { return device_; }
  CUstream_st* stream() const { return stream_; }
  void synchronize();
  // Device memory in use by every process (total - free), for benchmarks' peak-memory figures.
  size_t memory_in_use() const;

  // Fallible forms of allocate/upload: out of device memory becomes an error value naming the
  // request and the free memory (allocate/upload abort with the same message instead).
  Result<Buffer> try_allocate(size_t n_floats) override;
  Result<Tensor> try_upload(const Tensor& host_tensor);

  Buffer allocate(size_t n_floats) override;
  void release(float* data) override;
  Tensor upload(const Tensor& host_tensor) override;
  void release_weight(const Tensor& uploaded) override;
  // F32/F16/BF16 matrices only (block dtypes keep their own repacked layout); a group that does
  // not fit in free memory stays where it is.
  void place_adjacent(std::initializer_list<Tensor*> matrices) override;
  void copy_to_device(float* dst, const float* host_src, size_t n) override;
  void copy_to_host(float* host_dst, const float* src, size_t n) override;

  void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
              float* y) override;
  float* linear_scratch(size_t n_floats) override;
  // One GEMV pass when m <= 8 and the matrices were placed adjacently (or are int8-activation
  // GEMV formats, which need no adjacency); else one matmul each.
  void matmul_same_input(const float* x, int64_t m, int64_t k,
                         std::initializer_list<MatmulOutput> outs) override;
  // One GEMV pass with a SwiGLU epilogue when m <= 8 and gate/up were placed adjacently (or are
  // int8-activation GEMV formats).
  void matmul_swiglu(const float* x, int64_t m, int64_t k, const MatmulOutput& gate,
                     const MatmulOutput& up) override;
  // Whether matmul() runs these quantized weights at m rows on cuBLASLt's int8 (Q8A8) or fp8 (F8)
  // tensor-core GEMM with x quantized per token, rather than the bf16 dequantize path; tests pick
  // their reference from it.
  bool uses_low_precision_gemm(int64_t m, int64_t k, const Tensor& w);
  void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch,
                 int64_t n_heads, const AttentionParams& params) override;
  // Whether attention() runs this shape on the bf16 tensor-core prefill kernel (for f32 pools and
  // 16-byte aligned q, out and pools) rather than the exact fp32 one; tests pick their tolerance
  // from it.
  static bool uses_tensor_core_attention(const AttentionBatch& batch, int64_t n_heads,
                                         int64_t n_kv_heads, int64_t head_dim);
  void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
                const KvPools& kv) override;
  void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                   Accumulate accumulate) override;
  void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
               int64_t cols) override;
  void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                float* y) override;
  void add_rms_norm(float* x, const float* h, const float* weight, int64_t rows, int64_t d,
                    float eps, float* y) override;
  void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t d,
                  float eps, float* y) override;
  void rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
            const int32_t* positions, const float* cos_table, const float* sin_table) override;
  // One launch for F32/BF16 pools; I8/F8 pools (a scale per head row) take the two calls.
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

  bool can_record() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<Recording> end_capture() override;

 private:
  explicit CudaBackend(int device);
  Status init();
  void activate() const;  // makes device_ current on the calling thread

  int device_;
  int sm_count_ = 0;
  CUstream_st* stream_ = nullptr;
  std::unique_ptr<cuda::MatmulEngine> matmul_;
  std::unique_ptr<cuda::Scratch> attention_scratch_;   // split-K partial outputs
  std::unique_ptr<cuda::Scratch> attention_arrivals_;  // split-K arrival counters (kept at zero)
  std::unique_ptr<cuda::Scratch> linear_middle_;       // factored Linears' rank-wide middle
  std::vector<void*> uploads_;                        // weights owned by this backend
  bool capturing_ = false;
};

// The CUDA backend on `device`, or an error ("no CUDA device found (cudaGetDeviceCount: ...)",
// "CUDA device 3 out of range: 1 device(s) present", out of memory) -- never a crash.
Result<std::unique_ptr<Backend>> make_cuda_backend(int device);

}  // namespace brisk
