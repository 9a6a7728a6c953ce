#include "backends/cuda/quant_gemv.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/gemv_common.cuh"
#include "backends/cuda/quant_layout.h"
#include "core/quant_blocks.h"

namespace brisk::cuda {

namespace {

// How a code becomes a number. Every format is read as (level(code) - zero) * scale.
enum class Format { Int8, E4m3, Int4, Codebook4 };

__host__ __device__ constexpr int bits_of(Format f) { return f == Format::Int8 || f == Format::E4m3 ? 8 : 4; }

struct Levels {  // NF4 / LOG4 codebook, passed by value (unused by the other formats)
  float v[16];
};

__device__ __forceinline__ uint32_t word_of(const uint4& v, int t) {
  return t == 0 ? v.x : t == 1 ? v.y : t == 2 ? v.z : v.w;  // t is a compile-time constant after unrolling
}

__device__ __forceinline__ __half2 as_half2(uint32_t bits) {
  __half2 h;
  memcpy(&h, &bits, sizeof(h));
  return h;
}

// ---- decoding one 32-bit word of codes --------------------------------------------------------

// 8-bit formats: the word holds values 4t .. 4t + 3 of its 16-byte vector; out = level (no scale).
template <Format F>
__device__ __forceinline__ void decode_word8(uint32_t w, float (&v)[4]) {
  if constexpr (F == Format::Int8) {
    // Each byte flipped to code + 128, placed in the mantissa of 2^23 (0x4B0000xx), minus
    // 2^23 + 128: the code, exactly, in one byte permute and one add.
    const uint32_t biased = w ^ 0x80808080u;
    v[0] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7440)) - 8388736.0f;
    v[1] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7441)) - 8388736.0f;
    v[2] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7442)) - 8388736.0f;
    v[3] = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7443)) - 8388736.0f;
  } else {
    // e4m3 pairs widen exactly to fp16 (one instruction on sm_89+), then to fp32.
    const __half2 lo(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(w & 0xffffu), __NV_E4M3));
    const __half2 hi(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(w >> 16), __NV_E4M3));
    const float2 a = __half22float2(lo), b = __half22float2(hi);
    v[0] = a.x, v[1] = a.y, v[2] = b.x, v[3] = b.y;
  }
}

// 4-bit formats: the word holds values 4t .. 4t + 3 (low nibbles of its bytes) and
// 16 + 4t .. 16 + 4t + 3 (high nibbles); out = level - zero (no scale). `param` is the group's
// params word (quant_layout.h), `levels` the codebook in shared memory.
template <Format F>
__device__ __forceinline__ void decode_word4(uint32_t w, uint32_t param, const float* levels, float (&lo)[4],
                                             float (&hi)[4]) {
  if constexpr (F == Format::Int4) {
    // Two nibbles per half2 as 1024 + code (0x6400 is 1024; fp16 counts in ones from 1024 to
    // 2048), minus the stored 1024 + zero: code - zero, exactly.
    const __half2 bias = as_half2((param >> 16) * 0x00010001u);
    const uint32_t a = (w & 0x000F000Fu) | 0x64006400u;          // values 0, 2
    const uint32_t b = ((w >> 8) & 0x000F000Fu) | 0x64006400u;   // values 1, 3
    const uint32_t c = ((w >> 4) & 0x000F000Fu) | 0x64006400u;   // values 16, 18
    const uint32_t d = ((w >> 12) & 0x000F000Fu) | 0x64006400u;  // values 17, 19
    const float2 fa = __half22float2(__hsub2(as_half2(a), bias));
    const float2 fb = __half22float2(__hsub2(as_half2(b), bias));
    const float2 fc = __half22float2(__hsub2(as_half2(c), bias));
    const float2 fd = __half22float2(__hsub2(as_half2(d), bias));
    lo[0] = fa.x, lo[1] = fb.x, lo[2] = fa.y, lo[3] = fb.y;
    hi[0] = fc.x, hi[1] = fd.x, hi[2] = fc.y, hi[3] = fd.y;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      lo[i] = levels[(w >> (8 * i)) & 0xfu];
      hi[i] = levels[(w >> (8 * i + 4)) & 0xfu];
    }
  }
}

__device__ __forceinline__ float group_scale(uint32_t param) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(param & 0xffffu)));
}

// ---- GEMV (m <= 8) --------------------------------------------------------------------------
// The shape of matmul.cu's GEMV: a persistent grid (block b owns rows b, b + G, ...), x staged
// in shared memory by chunks, each warp streaming R rows with U 16-byte loads in flight per
// row. Differences: a 16-byte vector holds 16 8-bit values, so x is read from shared memory 2x
// as often per weight byte. Hence R = 4 rows per warp at m <= 2 (each x read serves 4 rows), and
// x is stored with 4 pad floats after every 32 values: lane l's vector then starts ~18 l floats
// in, so the 8 lanes of each 128-bit phase hit 8 distinct bank groups.

template <int M>
struct QuantShape {
  static constexpr int R = M <= 2 ? 4 : 2;
  static constexpr int U = 8 / R;
  static constexpr int CH = (kGemvXFloats * 8 / 9) / M / 256 * 256;  // values per chunk and row
  static constexpr int CHP = CH / 32 * 36;                           // floats per row, padded
  static_assert(M * CHP <= kGemvXFloats, "the x chunk must fit");
};

__device__ __forceinline__ int padded_index(int i) { return i + (i >> 5) * 4; }

// x[0:M, c0:c0+len] -> xs (rows past m and columns past k as zeros: padding codes are level 0,
// but 0 * stale shared memory could be NaN). All of a thread's loads are issued before its stores.
template <int M>
__device__ __forceinline__ void stage_x_padded(const float* __restrict__ x, int m, int k, bool x_vec4, int c0,
                                               int len, float* xs) {
  constexpr int CHP = QuantShape<M>::CHP;
  constexpr int kBatch = 8;
  const int per_row = len / 4, total = M * per_row;
  for (int base = int(threadIdx.x); base < total; base += kGemvThreads * kBatch) {
    float4 v[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kGemvThreads;
      const int mi = i / per_row, col = c0 + (i - mi * per_row) * 4;
      v[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (i < total && mi < m && col < k) {
        const float* p = x + int64_t(mi) * k + col;
        if (x_vec4) {  // k % 4 == 0: the whole float4 lies inside the row
          v[u] = *reinterpret_cast<const float4*>(p);
        } else {
          v[u].x = p[0];
          if (col + 1 < k) v[u].y = p[1];
          if (col + 2 < k) v[u].z = p[2];
          if (col + 3 < k) v[u].w = p[3];
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = base + u * kGemvThreads;
      const int mi = i / per_row, j = (i - mi * per_row) * 4;
      if (i < total) *reinterpret_cast<float4*>(xs + mi * CHP + padded_index(j)) = v[u];
    }
  }
}

__device__ __forceinline__ void fma4(const float (&w)[4], const float4& x, float& acc) {
  acc = fmaf(w[0], x.x, acc);
  acc = fmaf(w[1], x.y, acc);
  acc = fmaf(w[2], x.z, acc);
  acc = fmaf(w[3], x.w, acc);
}

// acc[mi][r] += (16-byte vector w[r] of an 8-bit format, decoded) . x[mi] over the vector's 16
// values; xv is the vector's first value in row 0 of the staged x. The row scale is applied at the
// end.
template <Format F, int M, int R>
__device__ __forceinline__ void accumulate_vector(const uint4 (&w)[R], const float* xv, float (&acc)[M][R]) {
  constexpr int CHP = QuantShape<M>::CHP;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    float wv[R][4];
#pragma unroll
    for (int r = 0; r < R; ++r) decode_word8<F>(word_of(w[r], t), wv[r]);
#pragma unroll
    for (int mi = 0; mi < M; ++mi) {
      const float4 xa = *reinterpret_cast<const float4*>(xv + mi * CHP + 4 * t);
#pragma unroll
      for (int r = 0; r < R; ++r) fma4(wv[r], xa, acc[mi][r]);
    }
  }
}

template <Format F, int M>
__global__ void __launch_bounds__(kGemvThreads)
    quant_gemv_kernel(const float* __restrict__ x, int m, int k, bool x_vec4, QuantDeviceView w,
                      const float* __restrict__ bias, float* __restrict__ y) {
  // The 4-bit formats take quant_gemv_int8 (int8 activations); this kernel serves F8 and Q8A8.
  static_assert(bits_of(F) == 8, "8-bit formats only");
  using S = QuantShape<M>;
  constexpr int R = S::R, U = S::U, CH = S::CH;
  constexpr int kValues = 16;  // values per 16-byte vector
  extern __shared__ __align__(16) float quant_smem[];
  float* xs = quant_smem;                    // [M][CHP]
  float* acc_s = quant_smem + kGemvXFloats;  // [rows_here][M]

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t grid = gridDim.x, b = blockIdx.x;
  const int64_t rows_here = w.n > b ? (w.n - 1 - b) / grid + 1 : 0;  // rows b, b + G, ...
  const int64_t row_groups = (rows_here + R - 1) / R;

  for (int c0 = 0; c0 < w.padded_k; c0 += CH) {
    const int len = min(CH, w.padded_k - c0);  // a multiple of 128: whole vectors and groups
    __syncthreads();                            // the previous chunk is no longer read
    stage_x_padded<M>(x, m, k, x_vec4, c0, len, xs);
    __syncthreads();
    const int nvec = len / kValues;

    for (int64_t g = warp; g < row_groups; g += kGemvWarps) {
      const uint8_t* wrow[R];
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int64_t j = g * R + r, row = b + (j < rows_here ? j : 0) * grid;
        wrow[r] = w.codes + row * w.code_row_bytes + int64_t(c0 / kValues) * 16;
      }
      float acc[M][R];
#pragma unroll
      for (int mi = 0; mi < M; ++mi)
#pragma unroll
        for (int r = 0; r < R; ++r) acc[mi][r] = 0.0f;

      for (int v0 = 0; v0 < nvec; v0 += 32 * U) {
        uint4 buf[U][R];
#pragma unroll
        for (int u = 0; u < U; ++u)
#pragma unroll
          for (int r = 0; r < R; ++r) {
            const int v = v0 + u * 32 + lane;
            buf[u][r] = v < nvec ? load_streaming(wrow[r] + int64_t(v) * 16) : make_uint4(0, 0, 0, 0);
          }
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int v = v0 + u * 32 + lane;
          if (v >= nvec) break;
          accumulate_vector<F, M, R>(buf[u], xs + padded_index(v * kValues), acc);
        }
      }

      add_warp_sums<M, R>(acc, g, rows_here, c0 == 0, lane, acc_s);
    }
  }

  __syncthreads();
  for (int64_t i = threadIdx.x; i < rows_here * m; i += kGemvThreads) {
    const int64_t j = i / m, mi = i - j * m, row = b + j * grid;
    const float scale = __uint_as_float(__ldg(w.params + row));
    y[mi * w.n + row] = acc_s[j * M + mi] * scale + (bias ? bias[row] : 0.0f);
  }
}

Levels levels_of(DType dtype) {
  Levels l{};
  const float* table = quant_traits(dtype)->levels;
  if (table) std::memcpy(l.v, table, sizeof(l.v));
  return l;
}

template <Format F, int M>
void launch_quant_gemv(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, int sm_count,
                       cudaStream_t stream) {
  static const int blocks_per_sm = [] {  // resident blocks per SM, computed once
    int b = 0;
    BRISK_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, quant_gemv_kernel<F, M>, kGemvThreads,
                                                                   kGemvSmemBytes));
    return b > 0 ? b : 1;
  }();
  const QuantDeviceView qm = quant_device_view(w);
  constexpr int R = QuantShape<M>::R;
  int64_t grid = int64_t(sm_count) * blocks_per_sm;
  grid = std::max(grid, ceil_div(qm.n * M, kGemvAccFloats));  // partial sums must fit
  grid = std::min(grid, ceil_div(qm.n, R));                   // at least R rows per block
  const bool x_vec4 = k % 4 == 0 && alignment_of(x) >= 16;
  quant_gemv_kernel<F, M><<<unsigned(grid), kGemvThreads, kGemvSmemBytes, stream>>>(
      x, m, k, x_vec4, qm, bias, y);
  BRISK_CUDA_LAUNCH_CHECK();
}

template <Format F>
void dispatch_rows(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, int sm_count,
                   cudaStream_t stream) {
  if (m == 1) return launch_quant_gemv<F, 1>(x, m, k, w, bias, y, sm_count, stream);
  if (m == 2) return launch_quant_gemv<F, 2>(x, m, k, w, bias, y, sm_count, stream);
  if (m <= 4) return launch_quant_gemv<F, 4>(x, m, k, w, bias, y, sm_count, stream);
  return launch_quant_gemv<F, 8>(x, m, k, w, bias, y, sm_count, stream);
}

// ---- dequantize to bf16 (the GEMM path) -------------------------------------------------------

template <Format F>
__global__ void dequantize_kernel(QuantDeviceView w, int k, Levels levels, __nv_bfloat16* __restrict__ out) {
  constexpr bool kNibbles = bits_of(F) == 4;
  constexpr int kValues = kNibbles ? 32 : 16;
  __shared__ float level_s[16];
  if (threadIdx.x < 16) level_s[threadIdx.x] = levels.v[threadIdx.x];
  __syncthreads();
  // Index arithmetic in 32 bits where the matrix allows it: a 64-bit division per vector cost
  // more than the vector's conversion.
  const int64_t vecs_per_row = (k + kValues - 1) / kValues;  // vectors holding real columns
  const int64_t total = w.n * vecs_per_row;
  const bool narrow = total < (int64_t(1) << 31);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = narrow ? int64_t(uint32_t(i) / uint32_t(vecs_per_row)) : i / vecs_per_row;
    const int64_t v = i - row * vecs_per_row;
    const uint4 codes = *reinterpret_cast<const uint4*>(w.codes + row * w.code_row_bytes + v * 16);
    float vals[kValues];
    float scale;
    if constexpr (kNibbles) {
      const uint32_t param = w.params[row * w.groups + v / 4];
      scale = group_scale(param);
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        float lo[4], hi[4];
        decode_word4<F>(word_of(codes, t), param, level_s, lo, hi);
#pragma unroll
        for (int e = 0; e < 4; ++e) vals[4 * t + e] = lo[e], vals[16 + 4 * t + e] = hi[e];
      }
    } else {
      scale = __uint_as_float(w.params[row]);
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        float q[4];
        decode_word8<F>(word_of(codes, t), q);
#pragma unroll
        for (int e = 0; e < 4; ++e) vals[4 * t + e] = q[e];
      }
    }
    __nv_bfloat16* dst = out + row * k + v * kValues;
    const int64_t left = k - v * kValues, valid = left < kValues ? left : kValues;
    if (valid == kValues && k % 8 == 0) {  // whole vector, 16-byte aligned: 8 values per store
#pragma unroll
      for (int e = 0; e < kValues; e += 8) {
        uint32_t packed[4];
#pragma unroll
        for (int h = 0; h < 4; ++h) {
          const __nv_bfloat162 pair = __floats2bfloat162_rn(vals[e + 2 * h] * scale, vals[e + 2 * h + 1] * scale);
          memcpy(&packed[h], &pair, 4);
        }
        *reinterpret_cast<uint4*>(dst + e) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
      }
    } else {
#pragma unroll
      for (int e = 0; e < kValues; ++e)
        if (e < valid) dst[e] = __float2bfloat16_rn(vals[e] * scale);
    }
  }
}

// ---- per-token activation quantization (w8a8) -------------------------------------------------

constexpr int kRowThreads = 256;

__global__ void __launch_bounds__(kRowThreads)
    quantize_rows_kernel(const float* __restrict__ x, int64_t k, float* __restrict__ out) {
  const float* row = x + int64_t(blockIdx.x) * k;
  float* dst = out + int64_t(blockIdx.x) * k;
  float mx = 0.0f;
  for (int64_t i = threadIdx.x; i < k; i += kRowThreads) mx = fmaxf(mx, fabsf(row[i]));
  const float absmax = block_absmax<kRowThreads>(mx);
  // The host's arithmetic, operation for operation (IEEE division, round half to even).
  const float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
  const float scale = absmax / 127.0f;
  for (int64_t i = threadIdx.x; i < k; i += kRowThreads) dst[i] = rintf(row[i] * inv) * scale;
}

}  // namespace

void quant_gemv(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, int sm_count,
                cudaStream_t stream) {
  switch (w.dtype) {
    // Q8 (on fp32 x) stays reachable for comparisons; the engine runs it through quant_gemv_int8.
    case DType::Q8:
    case DType::Q8A8: return dispatch_rows<Format::Int8>(x, m, k, w, bias, y, sm_count, stream);
    case DType::F8: return dispatch_rows<Format::E4m3>(x, m, k, w, bias, y, sm_count, stream);
    default: BRISK_CHECK(false, "quant_gemv: " + std::string(dtype_name(w.dtype)) + " runs in quant_gemv_int8");
  }
}

void dequantize_to_bf16(const Tensor& w, uint16_t* out, cudaStream_t stream) {
  const QuantDeviceView qm = quant_device_view(w);
  const int k = int(w.dim(1));
  const int64_t vectors = qm.n * ceil_div(k, 16);  // an upper bound: sizes the grid only
  const unsigned grid = grid_for(vectors, 256, 8192);
  auto* dst = reinterpret_cast<__nv_bfloat16*>(out);
  const Levels levels = levels_of(w.dtype);
  switch (w.dtype) {
    case DType::Q8:
    case DType::Q8A8: dequantize_kernel<Format::Int8><<<grid, 256, 0, stream>>>(qm, k, levels, dst); break;
    case DType::F8: dequantize_kernel<Format::E4m3><<<grid, 256, 0, stream>>>(qm, k, levels, dst); break;
    case DType::Q4: dequantize_kernel<Format::Int4><<<grid, 256, 0, stream>>>(qm, k, levels, dst); break;
    case DType::NF4:
    case DType::LOG4: dequantize_kernel<Format::Codebook4><<<grid, 256, 0, stream>>>(qm, k, levels, dst); break;
    default: BRISK_CHECK(false, "dequantize_to_bf16: " + std::string(dtype_name(w.dtype)) + " is not a block dtype");
  }
  BRISK_CUDA_LAUNCH_CHECK();
}

void quantize_rows_per_token(const float* x, int64_t m, int64_t k, float* out, cudaStream_t stream) {
  BRISK_CHECK(m <= 2147483647, "quantize_rows_per_token: too many rows");
  quantize_rows_kernel<<<unsigned(m), kRowThreads, 0, stream>>>(x, k, out);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace brisk::cuda
