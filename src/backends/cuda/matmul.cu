#include "backends/cuda/matmul.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "backends/cuda/elementwise.cuh"
#include "backends/cuda/gemv_common.cuh"
#include "backends/cuda/quant_gemm.cuh"
#include "backends/cuda/quant_gemm_mixed.cuh"
#include "backends/cuda/quant_gemv.cuh"
#include "backends/cuda/quant_layout.h"
#include "backends/cuda/quant_gemv_int8.cuh"

namespace brisk::cuda {

namespace {

std::string lt_error_text(cublasStatus_t status) {
  return std::string(cublasLtGetStatusName(status)) + ": " + cublasLtGetStatusString(status);
}

#define BRISK_LT_CHECK(expr)                                                                \
  do {                                                                                      \
    const cublasStatus_t brisk_lt_status_ = (expr);                                         \
    if (brisk_lt_status_ != CUBLAS_STATUS_SUCCESS)                                          \
      ::brisk::check_failed(__FILE__, __LINE__, #expr, lt_error_text(brisk_lt_status_));    \
  } while (0)

// ---- weight element conversions -------------------------------------------------------------

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

// x as the GEMM path sees it: rounded to the weight dtype (cuBLASLt multiplies like with like).
__device__ __forceinline__ float round_like(float v, const float*) { return v; }
__device__ __forceinline__ float round_like(float v, const __nv_bfloat16*) {
  return __bfloat162float(__float2bfloat16_rn(v));
}
__device__ __forceinline__ float round_like(float v, const __half*) {
  return __half2float(__float2half_rn(v));
}

// 16 bytes of weights -> fp32 values (8 for the 2-byte types, 4 for fp32).
__device__ __forceinline__ void unpack(const uint4& v, const __nv_bfloat16*, float* f) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    // Little-endian: the low half of each word is the earlier element.
    f[2 * i] = __uint_as_float(words[i] << 16);
    f[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void unpack(const uint4& v, const __half*, float* f) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 h;
    memcpy(&h, &words[i], 4);
    const float2 t = __half22float2(h);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}
__device__ __forceinline__ void unpack(const uint4& v, const float*, float* f) {
  f[0] = __uint_as_float(v.x);
  f[1] = __uint_as_float(v.y);
  f[2] = __uint_as_float(v.z);
  f[3] = __uint_as_float(v.w);
}

// ---- GEMV (m <= 8) ------------------------------------------------------------------------------
// A persistent grid (as many blocks as fit on the GPU at once): block b owns the weight rows
// b, b + G, b + 2G, ... (G = grid size), so every SM streams the same number of rows and none
// idles while others finish. The block stages x (all m rows, fp32) through shared memory in
// chunks; each warp takes R of the block's rows at a time and keeps R * U 16-byte weight loads in
// flight before using them. Partial sums per chunk go to shared memory, so x is staged once per
// chunk per block whatever the number of rows.

template <int M>
struct GemvShape {
  static constexpr int R = M >= 8 ? 4 : 2;  // rows per warp: each x value reused R times
  // 16-byte loads in flight per lane, R * U: 16 at m = 1 (two rows per warp; no loss measured,
  // bench/notes-cuda.md item 16), 8 otherwise (x's registers).
  static constexpr int U = M == 1 ? 8 : 8 / R;
  static constexpr int CH = kGemvXFloats / M;  // x chunk per row: a multiple of 8
};

// FMAs of 16 bytes of unpacked weights (E values) with x[e0 .. e0 + E) from shared memory. For the
// 2-byte types a lane reads 32 bytes of x; lanes whose bit 2 is set read the upper half first, so
// the 8 lanes of each 128-bit shared-memory phase hit 8 distinct bank groups (no 2-way conflict).
template <int E, int R>
__device__ __forceinline__ void fma_x(const float* xp, int lane, const float (&wf)[R][E],
                                      float (&acc)[R]) {
  if constexpr (E == 8) {
    const bool swap = (lane >> 2) & 1;
    const float4 first = *reinterpret_cast<const float4*>(xp + (swap ? 4 : 0));
    const float4 second = *reinterpret_cast<const float4*>(xp + (swap ? 0 : 4));
    const float4 lo = swap ? second : first, hi = swap ? first : second;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      acc[r] = fmaf(wf[r][0], lo.x, acc[r]);
      acc[r] = fmaf(wf[r][1], lo.y, acc[r]);
      acc[r] = fmaf(wf[r][2], lo.z, acc[r]);
      acc[r] = fmaf(wf[r][3], lo.w, acc[r]);
      acc[r] = fmaf(wf[r][4], hi.x, acc[r]);
      acc[r] = fmaf(wf[r][5], hi.y, acc[r]);
      acc[r] = fmaf(wf[r][6], hi.z, acc[r]);
      acc[r] = fmaf(wf[r][7], hi.w, acc[r]);
    }
  } else {
    const float4 v = *reinterpret_cast<const float4*>(xp);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      acc[r] = fmaf(wf[r][0], v.x, acc[r]);
      acc[r] = fmaf(wf[r][1], v.y, acc[r]);
      acc[r] = fmaf(wf[r][2], v.z, acc[r]);
      acc[r] = fmaf(wf[r][3], v.w, acc[r]);
    }
  }
}

// Copies x[0:M, c0:c0+len] into xs[M][CH] (rows past m as zeros), T = float4 when x rows are
// 16-byte aligned. All of a thread's loads are issued before its first store: a load-store loop
// would pay one L2 round trip per iteration, which cost ~6 us per call (measured).
template <int M, class T>
__device__ __forceinline__ void stage_x(const float* __restrict__ x, int m, int k, int c0, int len,
                                        float* xs) {
  constexpr int kWidth = sizeof(T) / sizeof(float);
  constexpr int kBatch = 8;
  constexpr int CH = GemvShape<M>::CH;
  const int per_row = len / kWidth, total = M * per_row;
  for (int base = int(threadIdx.x); base < total; base += kGemvThreads * kBatch) {
    T v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kGemvThreads;
      const int mi = i / per_row, j = (i - mi * per_row) * kWidth;
      v[u] = i < total && mi < m ? *reinterpret_cast<const T*>(x + int64_t(mi) * k + c0 + j) : T{};
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kGemvThreads;
      const int mi = i / per_row, j = (i - mi * per_row) * kWidth;
      if (i < total) *reinterpret_cast<T*>(xs + mi * CH + j) = v[u];
    }
  }
}

template <class W, int M, bool kVector>
__global__ void __launch_bounds__(kGemvThreads)
    gemv_kernel(const float* __restrict__ x, int m, int k, bool x_vec4, const W* __restrict__ w,
                const GemvOutputs out) {
  using S = GemvShape<M>;
  constexpr int R = S::R, U = S::U, CH = S::CH;
  static_assert(R % 2 == 0, "a SwiGLU row pair must fall to one warp");
  constexpr int E = 16 / int(sizeof(W));
  extern __shared__ __align__(16) float gemv_smem[];
  float* xs = gemv_smem;                   // [M][CH]
  float* acc_s = gemv_smem + kGemvXFloats;  // [rows_here][M]

  let_dependents_launch();
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t grid = gridDim.x, b = blockIdx.x, units = out.units();
  const int64_t units_here = units > b ? (units - 1 - b) / grid + 1 : 0;  // units b, b + G, ...
  const int64_t rows_here = units_here * out.rows_per_unit();
  const int64_t groups = (rows_here + R - 1) / R;

  // The weights do not depend on x: the warp's first batch of loads goes out before the wait for
  // the previous kernel (which may still be running) and before x is staged, and the loop below
  // starts from these registers.
  uint4 buf[U][R];  // one set of registers for the preload and every later batch
  bool preloaded = false;
  if (kVector && warp < groups) {
    const int nvec = min(CH, k) / E;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t j = int64_t(warp) * R + r;
      const W* row = w + out.weight_row(b, j < rows_here ? j : 0, grid) * int64_t(k);
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int v = u * 32 + lane;
        buf[u][r] = v < nvec ? load_streaming(row + int64_t(v) * E) : make_uint4(0, 0, 0, 0);
      }
    }
    preloaded = true;
  }
  wait_for_producer();

  for (int c0 = 0; c0 < k; c0 += CH) {
    const int len = min(CH, k - c0);
    __syncthreads();  // the previous chunk is no longer read
    if (x_vec4)
      stage_x<M, float4>(x, m, k, c0, len, xs);
    else
      stage_x<M, float>(x, m, k, c0, len, xs);
    __syncthreads();

    for (int64_t g = warp; g < groups; g += kGemvWarps) {
      const W* wrow[R];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int64_t j = g * R + r;
        wrow[r] = w + out.weight_row(b, j < rows_here ? j : 0, grid) * int64_t(k) + c0;
      }
      float acc[M][R];
#pragma unroll
      for (int mi = 0; mi < M; ++mi)
#pragma unroll
        for (int r = 0; r < R; ++r) acc[mi][r] = 0.0f;

      if constexpr (kVector) {
        const int nvec = len / E;
        for (int v0 = 0; v0 < nvec; v0 += 32 * U) {
          if (!preloaded) {  // the preload is this warp's first batch: (c0, g, v0) = (0, warp, 0)
#pragma unroll
            for (int u = 0; u < U; ++u)
#pragma unroll
              for (int r = 0; r < R; ++r) {
                const int v = v0 + u * 32 + lane;
                buf[u][r] = v < nvec ? load_streaming(wrow[r] + int64_t(v) * E) : make_uint4(0, 0, 0, 0);
              }
          }
          preloaded = false;
#pragma unroll
          for (int u = 0; u < U; ++u) {
            const int v = v0 + u * 32 + lane;
            if (v >= nvec) break;
            float wf[R][E];
#pragma unroll
            for (int r = 0; r < R; ++r) unpack(buf[u][r], static_cast<const W*>(nullptr), wf[r]);
#pragma unroll
            for (int mi = 0; mi < M; ++mi) fma_x<E, R>(xs + mi * CH + v * E, lane, wf, acc[mi]);
          }
        }
      } else {
        // Any k and alignment: one element per lane per step (still coalesced across the warp).
        for (int j0 = 0; j0 < len; j0 += 32 * U) {
          float buf[U][R];
#pragma unroll
          for (int u = 0; u < U; ++u)
#pragma unroll
            for (int r = 0; r < R; ++r) {
              const int j = j0 + u * 32 + lane;
              buf[u][r] = j < len ? to_f32(wrow[r][j]) : 0.0f;
            }
#pragma unroll
          for (int u = 0; u < U; ++u) {
            const int j = j0 + u * 32 + lane;
            if (j >= len) break;
#pragma unroll
            for (int mi = 0; mi < M; ++mi)
#pragma unroll
              for (int r = 0; r < R; ++r) acc[mi][r] = fmaf(buf[u][r], xs[mi * CH + j], acc[mi][r]);
          }
        }
      }

      add_warp_sums<M, R>(acc, g, rows_here, c0 == 0, lane, acc_s);
    }
  }

  __syncthreads();
  for (int64_t i = threadIdx.x; i < units_here * m; i += kGemvThreads) {
    const int64_t j = i / m, mi = i - j * m;
    if (out.swiglu)
      out.store_swiglu(mi, b + j * grid, acc_s[2 * j * M + mi], acc_s[(2 * j + 1) * M + mi]);
    else
      out.store(mi, b + j * grid, acc_s[j * M + mi]);
  }
}

template <class W, int M, bool kVector>
int gemv_blocks_per_sm() {
  // Resident blocks per SM for this instantiation (registers, 48 KB of shared memory); computed
  // once. All GPUs of one process are assumed to be of one kind.
  static const int blocks = [] {
    int b = 0;
    BRISK_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &b, gemv_kernel<W, M, kVector>, kGemvThreads, kGemvSmemBytes));
    return b > 0 ? b : 1;
  }();
  return blocks;
}

template <class W, int M, bool kVector>
void launch_gemv_variant(const float* x, int m, int k, const W* w, const GemvOutputs& out,
                         int sm_count, cudaStream_t stream) {
  const int64_t grid = gemv_grid(int64_t(sm_count) * gemv_blocks_per_sm<W, M, kVector>(), out, M,
                                 GemvShape<M>::R, kGemvAccFloats);
  // float4 staging needs 16-byte x rows; chunks (CH) and hence every c0 are multiples of 4.
  const bool x_vec4 = k % 4 == 0 && alignment_of(x) >= 16;
  launch_overlapped(gemv_kernel<W, M, kVector>, dim3(unsigned(grid)), dim3(kGemvThreads), kGemvSmemBytes,
                    stream, x, m, k, x_vec4, w, out);
}

template <class W, int M>
void launch_gemv(const float* x, int m, int k, const W* w, const GemvOutputs& out, int sm_count,
                 cudaStream_t stream) {
  const bool vector = (int64_t(k) * int64_t(sizeof(W))) % 16 == 0 && alignment_of(w) >= 16;
  if (vector)
    launch_gemv_variant<W, M, true>(x, m, k, w, out, sm_count, stream);
  else
    launch_gemv_variant<W, M, false>(x, m, k, w, out, sm_count, stream);
}

template <class W>
void dispatch_gemv(const float* x, int m, int k, const W* w, const GemvOutputs& out, int sm_count,
                   cudaStream_t stream) {
  if (m == 1) return launch_gemv<W, 1>(x, m, k, w, out, sm_count, stream);
  if (m == 2) return launch_gemv<W, 2>(x, m, k, w, out, sm_count, stream);
  if (m <= 4) return launch_gemv<W, 4>(x, m, k, w, out, sm_count, stream);
  return launch_gemv<W, 8>(x, m, k, w, out, sm_count, stream);
}

// ---- fallback GEMM (shapes cuBLASLt declines) ---------------------------------------------------
// Same numerics as the cuBLASLt path (x rounded to the weight dtype, fp32 sums), so a model's
// output does not depend on which of the two ran.

constexpr int kTile = 16;

template <class W>
__global__ void __launch_bounds__(kTile * kTile)
    tiled_gemm_kernel(const float* __restrict__ x, int64_t m, int64_t k, const W* __restrict__ w,
                      int64_t n, const float* __restrict__ bias, float* __restrict__ y) {
  __shared__ float xs[kTile][kTile + 1], ws[kTile][kTile + 1];
  const int tx = int(threadIdx.x) % kTile, ty = int(threadIdx.x) / kTile;
  const int64_t x_row = int64_t(blockIdx.y) * kTile + ty;  // row of x this thread loads
  const int64_t w_row = int64_t(blockIdx.x) * kTile + ty;  // row of w this thread loads
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += kTile) {
    const int64_t kk = k0 + tx;
    xs[ty][tx] = x_row < m && kk < k ? round_like(x[x_row * k + kk], w) : 0.0f;
    ws[ty][tx] = w_row < n && kk < k ? to_f32(w[w_row * k + kk]) : 0.0f;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kTile; ++i) acc = fmaf(xs[ty][i], ws[tx][i], acc);
    __syncthreads();
  }
  const int64_t row = int64_t(blockIdx.y) * kTile + ty, col = int64_t(blockIdx.x) * kTile + tx;
  if (row < m && col < n) y[row * n + col] = acc + (bias ? bias[col] : 0.0f);
}

template <class W>
void launch_tiled(const float* x, int64_t m, int64_t k, const W* w, int64_t n, const float* bias,
                  float* y, cudaStream_t stream) {
  const dim3 grid(unsigned(ceil_div(n, kTile)), unsigned(ceil_div(m, kTile)));
  tiled_gemm_kernel<W><<<grid, kTile * kTile, 0, stream>>>(x, m, k, w, n, bias, y);
  BRISK_CUDA_LAUNCH_CHECK();
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: BRISK_CHECK(false, "matmul: weights must be F32, F16 or BF16");
  }
  return CUDA_R_32F;
}

// What cuBLASLt multiplies for a weight dtype: element types, compute and scale types, and the
// depth and weight leading dimension (x's codes are stored with ld = depth, D with ld = n).
struct LtOperands {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = CUDA_R_32F, ab = CUDA_R_32F, d = CUDA_R_32F;
  int64_t depth = 0, lda = 0;
};

LtOperands lt_operands(DType wtype, int64_t n, int64_t k) {
  LtOperands o;
  if (wtype == DType::Q8A8 || wtype == DType::F8) {
    // The uploaded codes as they lie: rows of code_row_bytes, zero codes past k. Int8: the IMMA
    // kernels' only combination with int32 output (scale type int32). Fp8: fp32 output, which the
    // e4m3 x e4m3 kernels offer next to bf16/fp16; cuBLASLt's A/B/D scale pointers stay unset (1.0).
    o.depth = quant_gemm_depth(k);
    o.lda = quant_device_layout(wtype, n, k).code_row_bytes;
    if (wtype == DType::Q8A8) {
      o.compute = CUBLAS_COMPUTE_32I;
      o.scale = o.d = CUDA_R_32I;
      o.ab = CUDA_R_8I;
    } else {
      o.ab = CUDA_R_8F_E4M3;
    }
    return o;
  }
  o.ab = cuda_type(wtype);
  o.depth = o.lda = k;
  return o;
}

// A device weight [n, k] of any dtype.
void check_weight_shape(const Tensor& w, int64_t k) {
  BRISK_CHECK(w.device == Device::CUDA, "CudaBackend::matmul: weight is not in device memory "
                                        "(upload it through the backend first)");
  BRISK_CHECK(w.rank() == 2 && w.dim(1) == k,
              "CudaBackend::matmul: w must be [n, k] with k = " + std::to_string(k) + ", got " +
                  shape_string(w.shape));
}

void check_weight(const Tensor& w, int64_t k) {
  check_weight_shape(w, k);
  cuda_type(w.dtype);
}

void check_quant_weight(const Tensor& w, int64_t k) {
  check_weight_shape(w, k);
  BRISK_CHECK(k < (int64_t(1) << 30), "quantized matmul: k too large");
}

// Whether quant_gemv_int8 takes these matrices at m rows: one int8-activation dtype and one k,
// all on the device.
bool int8_gemv_takes(int64_t m, int64_t k, const Backend::MatmulOutput* part, int count) {
  const Tensor& first = *part[0].w;
  if (m < 1 || m > 8 || !has_int8_activation_gemv(first.dtype)) return false;
  for (int p = 0; p < count; ++p) {
    const Tensor& w = *part[p].w;
    if (w.dtype != first.dtype || w.device != Device::CUDA || w.rank() != 2 || w.dim(1) != k) return false;
    check_quant_weight(w, k);
  }
  return true;
}

}  // namespace

// ---- MatmulEngine -------------------------------------------------------------------------------

Result<std::unique_ptr<MatmulEngine>> MatmulEngine::create(cudaStream_t stream) {
  std::unique_ptr<MatmulEngine> engine(new MatmulEngine(stream));
  const cublasStatus_t status = cublasLtCreate(&engine->handle_);
  if (status != CUBLAS_STATUS_SUCCESS) {
    engine->handle_ = nullptr;
    return make_error("cuBLASLt could not start (cublasLtCreate: " + lt_error_text(status) + ")");
  }
  // Hopper kernels want up to 32 MiB of workspace for their best algorithms.
  constexpr size_t kWorkspace = size_t(32) << 20;
  const cudaError_t err = cudaMalloc(&engine->workspace_, kWorkspace);
  if (err != cudaSuccess) {
    engine->workspace_ = nullptr;
    return make_error("out of device memory allocating the 32 MiB cuBLASLt workspace (" +
                      cuda_error_text(err) + ")");
  }
  engine->workspace_bytes_ = kWorkspace;
  int device = 0;
  BRISK_CUDA_CHECK(cudaGetDevice(&device));
  BRISK_CUDA_CHECK(cudaDeviceGetAttribute(&engine->sm_count_, cudaDevAttrMultiProcessorCount, device));
  return Result<std::unique_ptr<MatmulEngine>>(std::move(engine));
}

void MatmulEngine::destroy(Plan& p) {
  if (p.a) cublasLtMatrixLayoutDestroy(p.a);
  if (p.b) cublasLtMatrixLayoutDestroy(p.b);
  if (p.d) cublasLtMatrixLayoutDestroy(p.d);
  if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  p = Plan{};
}

MatmulEngine::~MatmulEngine() {
  for (auto& [key, plan] : plans_) destroy(plan);
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

MatmulEngine::Plan& MatmulEngine::plan_for(DType wtype, int64_t m, int64_t n, int64_t k, bool bias,
                                           const void* a, const void* b, const void* d) {
  const PlanKey key{int(wtype), m, n, k, bias, alignment_of(a), alignment_of(b), alignment_of(d)};
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second;
  if (plans_.size() >= 1024) {  // many distinct prefill lengths: start over rather than grow
    for (auto& [old_key, plan] : plans_) destroy(plan);
    plans_.clear();
  }

  // Column-major view: D[n, m] = W^T[n, k] . X^T[k, m], where W is stored [n, k] row-major,
  // i.e. a column-major k x n matrix (transposed by the op), and X is a column-major k x m one.
  // A transposed, B not ("TN") is also the only form the int8 and fp8 kernels accept.
  Plan p;
  const LtOperands o = lt_operands(wtype, n, k);
  BRISK_LT_CHECK(cublasLtMatmulDescCreate(&p.desc, o.compute, o.scale));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  BRISK_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                                sizeof(trans_a)));
  BRISK_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                                sizeof(trans_b)));
  if (bias) {
    // The bias vector has D's type (fp32) and one entry per row of D (per output feature).
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    BRISK_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                  &epilogue, sizeof(epilogue)));
  }
  BRISK_LT_CHECK(cublasLtMatrixLayoutCreate(&p.a, o.ab, uint64_t(o.depth), uint64_t(n), o.lda));
  BRISK_LT_CHECK(cublasLtMatrixLayoutCreate(&p.b, o.ab, uint64_t(o.depth), uint64_t(m), o.depth));
  BRISK_LT_CHECK(cublasLtMatrixLayoutCreate(&p.d, o.d, uint64_t(n), uint64_t(m), n));

  cublasLtMatmulPreference_t pref = nullptr;
  BRISK_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = workspace_bytes_;
  BRISK_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // The defaults assume 256-byte aligned pointers; activations at row offsets may be less.
  const uint32_t align_a = std::get<5>(key), align_b = std::get<6>(key), align_d = std::get<7>(key);
  BRISK_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  BRISK_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  BRISK_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof(align_d)));
  BRISK_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.d,
                                                               p.d, pref, 1, &result, &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  // NOT_SUPPORTED here means "no kernel for this shape/alignment": the caller falls back.
  p.usable = status == CUBLAS_STATUS_SUCCESS && returned > 0;
  if (p.usable) p.algo = result.algo;
  return plans_.emplace(key, p).first->second;
}

bool MatmulEngine::lt_gemm(const float* x, int64_t m, int64_t k, const Tensor& w,
                           const float* bias, float* y) {
  check_weight(w, k);
  const int64_t n = w.dim(0);
  const size_t x_elems = size_t(m) * size_t(k);
  const void* b = x;
  if (w.dtype != DType::F32) b = x_lowp_.get(x_elems * dtype_size(w.dtype));
  Plan& p = plan_for(w.dtype, m, n, k, bias != nullptr, w.data, b, y);
  if (!p.usable) return false;
  if (w.dtype == DType::BF16)
    convert_f32_to_bf16(x, static_cast<uint16_t*>(const_cast<void*>(b)), int64_t(x_elems), stream_);
  else if (w.dtype == DType::F16)
    convert_f32_to_f16(x, static_cast<uint16_t*>(const_cast<void*>(b)), int64_t(x_elems), stream_);
  if (bias)
    BRISK_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                  &bias, sizeof(bias)));
  const float alpha = 1.0f, beta = 0.0f;
  BRISK_LT_CHECK(cublasLtMatmul(handle_, p.desc, &alpha, w.data, p.a, b, p.b, &beta, y, p.d, y,
                                p.d, &p.algo, workspace_, workspace_bytes_, stream_));
  return true;
}

// ---- Q8A8 / F8 on cuBLASLt's int8 / fp8 GEMM (quant_gemm.cuh) ------------------------------------

bool MatmulEngine::quant_gemm_available(int64_t m, int64_t k, const Tensor& w) {
  check_quant_weight(w, k);
  if (w.dtype != DType::Q8A8 && w.dtype != DType::F8) return false;
  const int64_t n = w.dim(0), depth = quant_gemm_depth(k);
  // n % 4: the int8 kernels need the row count of A (n) and every leading dimension to be
  // multiples of 4, and D's leading dimension (n) must keep its columns 16-byte aligned. A depth
  // past 2^17 could overflow the int32 sums (127 * 127 * depth).
  if (m < 1 || m > 2147483647 || n % 4 != 0 || depth > (int64_t(1) << 17) || alignment_of(w.data) < 16)
    return false;
  // x's codes and (for aligned y) the outputs sit at 256-byte aligned addresses, as null does.
  return plan_for(w.dtype, m, n, k, false, w.data, nullptr, nullptr).usable;
}

bool MatmulEngine::lt_quant_gemm(const float* x, int64_t m, int64_t k, const Tensor& w,
                                 const float* bias, float* y) {
  if (!quant_gemm_available(m, k, w)) return false;
  const int64_t n = w.dim(0), depth = quant_gemm_depth(k);
  auto* codes = static_cast<uint8_t*>(x_quant_.get(size_t(m) * size_t(depth) + size_t(m) * sizeof(float)));
  auto* x_scales = reinterpret_cast<float*>(codes + size_t(m) * size_t(depth));
  // D (int32 or fp32, 4 bytes like y) goes straight into y, which the epilogue then rescales in
  // place; a y that is not 16-byte aligned gets a scratch buffer instead.
  void* acc = alignment_of(y) >= 16 ? static_cast<void*>(y) : gemm_acc_.get(size_t(m * n) * sizeof(float));
  Plan& p = plan_for(w.dtype, m, n, k, false, w.data, codes, acc);
  if (!p.usable) return false;
  const bool int8 = w.dtype == DType::Q8A8;
  quantize_activations(x, m, k, depth, int8 ? ActivationCode::Int8 : ActivationCode::E4m3, codes,
                       x_scales, stream_);
  // The scalars have the descriptor's scale type: int32 for the int8 GEMM, fp32 for fp8. Fp8's
  // fast-accumulation mode stays off (the default), so partial sums are promoted to fp32 regularly.
  const int32_t alpha_i = 1, beta_i = 0;
  const float alpha_f = 1.0f, beta_f = 0.0f;
  const void* alpha = int8 ? static_cast<const void*>(&alpha_i) : &alpha_f;
  const void* beta = int8 ? static_cast<const void*>(&beta_i) : &beta_f;
  BRISK_LT_CHECK(cublasLtMatmul(handle_, p.desc, alpha, w.data, p.a, codes, p.b, beta, acc, p.d, acc,
                                p.d, &p.algo, workspace_, workspace_bytes_, stream_));
  const auto* w_scales = reinterpret_cast<const float*>(static_cast<const uint8_t*>(w.data) +
                                                        quant_device_layout(w.dtype, n, k).params_offset);
  if (int8)
    scale_gemm_output(static_cast<const int32_t*>(acc), m, n, x_scales, w_scales, bias, y, stream_);
  else
    scale_gemm_output(static_cast<const float*>(acc), m, n, x_scales, w_scales, bias, y, stream_);
  return true;
}

void MatmulEngine::run_quantized(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                                 float* y) {
  check_quant_weight(w, k);
  const int64_t n = w.dim(0);
  if (m > 8 && lt_quant_gemm(x, m, k, w, bias, y)) return;
  if (m > 8 && has_mixed_gemm(w.dtype))
    return quant_gemm_mixed(x, int(m), int(k), w, bias, y,
                            x_mixed_.get(mixed_gemm_scratch_bytes(int(m), w, sm_count_)), sm_count_, stream_);
  if (w.dtype == DType::Q8A8) {
    auto* xq = static_cast<float*>(x_quant_.get(size_t(m) * size_t(k) * sizeof(float)));
    quantize_rows_per_token(x, m, k, xq, stream_);
    x = xq;
  }
  if (m <= 8 && has_int8_activation_gemv(w.dtype)) {
    const Backend::MatmulOutput target{&w, bias, y};
    void* codes = x_int8_.get(int8_activation_bytes(int(m), w));
    return quant_gemv_int8(x, int(m), int(k), &target, 1, false, sm_count_, codes, stream_);
  }
  if (m <= 8) return quant_gemv(x, int(m), int(k), w, bias, y, sm_count_, stream_);
  auto* dense_w = static_cast<uint16_t*>(w_bf16_.get(size_t(n) * size_t(k) * sizeof(uint16_t)));
  dequantize_to_bf16(w, dense_w, stream_);
  const Tensor dense{dense_w, DType::BF16, {n, k}, Device::CUDA};
  if (!lt_gemm(x, m, k, dense, bias, y)) fallback_gemm(x, m, k, dense, bias, y);
}

void MatmulEngine::gemv(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                        float* y) {
  if (is_block_dtype(w.dtype)) {
    BRISK_CHECK(m >= 1 && m <= 8, "gemv: m must be in 1..8");
    return run_quantized(x, m, k, w, bias, y);
  }
  check_weight(w, k);
  gemv_rows(x, m, k, w, GemvOutputs::one(y, bias, w.dim(0)));
}

void MatmulEngine::gemv_rows(const float* x, int64_t m, int64_t k, const Tensor& w,
                             const GemvOutputs& out) {
  BRISK_CHECK(m >= 1 && m <= 8, "gemv: m must be in 1..8");
  BRISK_CHECK(k < (int64_t(1) << 31), "gemv: k too large");
  switch (w.dtype) {
    case DType::F32:
      return dispatch_gemv(x, int(m), int(k), w.as<const float>(), out, sm_count_, stream_);
    case DType::BF16:
      return dispatch_gemv(x, int(m), int(k), w.as<const __nv_bfloat16>(), out, sm_count_, stream_);
    default:
      return dispatch_gemv(x, int(m), int(k), w.as<const __half>(), out, sm_count_, stream_);
  }
}

bool MatmulEngine::run_same_input(const float* x, int64_t m, int64_t k,
                               std::initializer_list<Backend::MatmulOutput> outs) {
  const int count = int(outs.size());
  if (m < 1 || m > 8 || count < 2 || count > GemvOutputs::kMax) return false;
  const Backend::MatmulOutput* part = outs.begin();
  const Tensor& first = *part[0].w;
  if (first.device != Device::CUDA) return false;
  if (is_block_dtype(first.dtype)) {
    // The int8-activation GEMV formats: x quantized once, then one GEMV over all the matrices.
    if (!int8_gemv_takes(m, k, part, count)) return false;
    void* codes = x_int8_.get(int8_activation_bytes(int(m), first));
    quant_gemv_int8(x, int(m), int(k), part, count, false, sm_count_, codes, stream_);
    return true;
  }
  // Plain dtypes: one GEMV over the union when the matrices lie back to back in one allocation
  // (CudaBackend::place_adjacent); larger m (cuBLASLt) would need strided outputs.
  const auto* next = static_cast<const uint8_t*>(first.data);
  for (int p = 0; p < count; ++p) {
    const Tensor& w = *part[p].w;
    if (w.dtype != first.dtype || w.rank() != 2 || w.dim(1) != k || w.data != next) return false;
    next += w.nbytes();
  }
  check_weight(first, k);
  gemv_rows(x, m, k, first, GemvOutputs::of(part, count));
  return true;
}

bool MatmulEngine::run_swiglu(const float* x, int64_t m, int64_t k, const Backend::MatmulOutput& gate,
                              const Backend::MatmulOutput& up) {
  const Tensor &wg = *gate.w, &wu = *up.w;
  const Backend::MatmulOutput parts[2] = {gate, up};
  if (is_block_dtype(wg.dtype)) {
    if (wu.shape != wg.shape || !int8_gemv_takes(m, k, parts, 2)) return false;
    quant_gemv_int8(x, int(m), int(k), parts, 2, true, sm_count_, x_int8_.get(int8_activation_bytes(int(m), wg)),
                    stream_);
    return true;
  }
  if (m < 1 || m > 8 || wg.device != Device::CUDA || wu.dtype != wg.dtype || wg.rank() != 2 ||
      wu.shape != wg.shape || wg.dim(1) != k || static_cast<const uint8_t*>(wg.data) + wg.nbytes() != wu.data)
    return false;
  check_weight(wg, k);
  gemv_rows(x, m, k, wg, GemvOutputs::of(parts, 2, /*swiglu=*/true));
  return true;
}

void MatmulEngine::fallback_gemm(const float* x, int64_t m, int64_t k, const Tensor& w,
                                 const float* bias, float* y) {
  check_weight(w, k);
  const int64_t n = w.dim(0);
  BRISK_CHECK(ceil_div(m, kTile) <= 65535, "fallback_gemm: too many rows");
  switch (w.dtype) {
    case DType::F32: return launch_tiled(x, m, k, w.as<const float>(), n, bias, y, stream_);
    case DType::BF16: return launch_tiled(x, m, k, w.as<const __nv_bfloat16>(), n, bias, y, stream_);
    default: return launch_tiled(x, m, k, w.as<const __half>(), n, bias, y, stream_);
  }
}

void MatmulEngine::run(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                       float* y) {
  if (m <= 0) return;
  if (is_block_dtype(w.dtype)) return run_quantized(x, m, k, w, bias, y);
  if (m <= 8) return gemv(x, m, k, w, bias, y);
  if (!lt_gemm(x, m, k, w, bias, y)) fallback_gemm(x, m, k, w, bias, y);
}

}  // namespace brisk::cuda
