// y[m, n] = x[m, k] w[n, k]^T (+ bias) on the GPU.
//  - m <= 8: a hand-written GEMV that streams each weight row once with 16-byte loads over a
//    persistent grid (the decode case, bound by memory bandwidth); x stays fp32.
//  - m > 8: cuBLASLt. BF16/F16 weights: x is rounded to the weight dtype in a scratch buffer,
//    products accumulate in fp32 and land in fp32 (+bias in the epilogue). F32 weights: plain
//    fp32 (CUBLAS_COMPUTE_32F, no TF32), so results match an fp32 reference.
//  - Shapes cuBLASLt finds no algorithm for (odd leading dimensions): a simple tiled kernel.
//  - Quantized weights (block dtypes): their own GEMV for m <= 8 (Q8, Q4, NF4, LOG4 on int8
//    activations, quant_gemv_int8.cuh; F8, Q8A8 in fp32, quant_gemv.cuh). Larger m: Q8, Q4,
//    NF4 and LOG4 run the mixed-input GEMM (bf16 x, codes widened in registers,
//    quant_gemm_mixed.cuh); Q8A8 and F8 run cuBLASLt's int8 / fp8 tensor-core GEMM on the
//    uploaded codes with x quantized per token (quant_gemm.cuh), and shapes those kernels do not
//    take dequantize the matrix to bf16 in a scratch buffer and take the bf16 path above.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/gemv_common.cuh"
#include "core/tensor.h"
#include "ops/backend.h"

namespace brisk::cuda {

class MatmulEngine {
 public:
  static Result<std::unique_ptr<MatmulEngine>> create(cudaStream_t stream);
  ~MatmulEngine();
  MatmulEngine(const MatmulEngine&) = delete;
  MatmulEngine& operator=(const MatmulEngine&) = delete;

  void run(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y);
  // Several matrices of one x (q/k/v, gate/up) at m <= 8, fewer launches than one run() each:
  // F32/F16/BF16 matrices that lie back to back in device memory, in order, as one GEMV pass;
  // Q8/Q4/NF4/LOG4 matrices of one dtype with x quantized once, then one GEMV over all. False
  // (nothing enqueued) otherwise.
  bool run_same_input(const float* x, int64_t m, int64_t k, std::initializer_list<Backend::MatmulOutput> outs);
  // Backend::matmul_swiglu as one GEMV pass with the SwiGLU epilogue at m <= 8: F32/F16/BF16
  // gate and up placed back to back, or Q8/Q4/NF4/LOG4 (the int8-activation GEMV, which needs no
  // adjacency); false (nothing enqueued) otherwise.
  bool run_swiglu(const float* x, int64_t m, int64_t k, const Backend::MatmulOutput& gate,
                  const Backend::MatmulOutput& up);

  // Exposed for tests and benchmarks: force one path regardless of m.
  void gemv(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y);
  void fallback_gemm(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                     float* y);
  // False when cuBLASLt has no algorithm for the shape/alignment (the caller falls back).
  bool lt_gemm(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y);
  // Q8A8 / F8 weights on the int8 / fp8 GEMM; false (nothing enqueued) when the dtype or shape
  // does not qualify (n % 4 != 0, no cuBLASLt algorithm, e.g. fp8 before sm_89).
  bool lt_quant_gemm(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                     float* y);
  // Whether lt_quant_gemm would take this weight at m rows (tests pick their reference from it).
  bool quant_gemm_available(int64_t m, int64_t k, const Tensor& w);

 private:
  // The plain-dtype GEMV over w's rows, written where `out` says.
  void gemv_rows(const float* x, int64_t m, int64_t k, const Tensor& w, const GemvOutputs& out);
  // Block-dtype weights, any m (Q8A8: activations snapped to their per-token int8 grid first).
  void run_quantized(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y);

  // One cuBLASLt configuration, built once per (dtype, shape, bias, alignments).
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;
  };
  using PlanKey = std::tuple<int, int64_t, int64_t, int64_t, bool, uint32_t, uint32_t, uint32_t>;

  explicit MatmulEngine(cudaStream_t stream)
      : stream_(stream), x_lowp_(stream), x_quant_(stream), x_int8_(stream), w_bf16_(stream),
        gemm_acc_(stream), x_mixed_(stream) {}
  Plan& plan_for(DType wtype, int64_t m, int64_t n, int64_t k, bool bias, const void* a,
                 const void* b, const void* d);
  static void destroy(Plan& p);

  cudaStream_t stream_;
  int sm_count_ = 1;  // sizes the GEMV's persistent grid
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  Scratch x_lowp_;  // x rounded to the weight dtype for cuBLASLt
  Scratch x_quant_;  // Q8A8 GEMV: x on its per-token int8 grid; lt_quant_gemm: x's codes + scales
  Scratch x_int8_;   // the int8 GEMV's activation codes (quant_gemv_int8)
  Scratch w_bf16_;   // NF4 / LOG4 dequantized for the GEMM path (the largest one seen)
  Scratch gemm_acc_;  // lt_quant_gemm's accumulators when y is not 16-byte aligned
  Scratch x_mixed_;   // quant_gemm_mixed's bf16 activations and split-k partial sums
  std::map<PlanKey, Plan> plans_;
};

}  // namespace brisk::cuda
