// Pieces shared by the GEMVs (matmul.cu for F32/F16/BF16 weights, quant_gemv.cu for block
// dtypes): the persistent grid's block shape and shared-memory budget, and the streaming load.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/backend.h"

namespace brisk::cuda {

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kGemvXFloats = 8192;    // x chunk, all M rows: 32 KB
constexpr int kGemvAccFloats = 4096;  // partial sums [rows of the block][M]: 16 KB
constexpr size_t kGemvSmemBytes = size_t(kGemvXFloats + kGemvAccFloats) * sizeof(float);

// Where a GEMV's output rows go. One weight allocation may hold several matrices stacked by rows
// (q/k/v or gate/up placed adjacently at load): rows [end[p-1], end[p]) belong to part p, whose
// output y[p] is [m, end[p] - end[p-1]] with its own bias (or none). A plain GEMV has one part.
//
// SwiGLU (two parts of n rows each, gate then up): the grid hands out row *pairs* (gate row i, up
// row i), each to one warp, which keeps the two sums next to each other, so the epilogue writes
// y[0][mi, i] = silu(gate + bias) * (up + bias) straight away (y[1] is not written).
struct GemvOutputs {
  static constexpr int kMax = 3;
  float* y[kMax] = {};
  const float* bias[kMax] = {};
  int64_t end[kMax] = {};
  int count = 0;
  bool swiglu = false;

  static GemvOutputs one(float* y, const float* bias, int64_t n) {
    GemvOutputs o;
    o.y[0] = y;
    o.bias[0] = bias;
    o.end[0] = n;
    o.count = 1;
    return o;
  }
  // The parts of one GEMV over 1..kMax matrices stacked in this order (rows of part p =
  // parts[p].w->dim(0)); swiglu for a gate and an up matrix.
  static GemvOutputs of(const Backend::MatmulOutput* parts, int count, bool swiglu = false) {
    GemvOutputs o;
    for (int p = 0; p < count; ++p) {
      o.y[p] = parts[p].y;
      o.bias[p] = parts[p].bias;
      o.end[p] = o.start(p) + parts[p].w->dim(0);
    }
    o.count = count;
    o.swiglu = swiglu;
    return o;
  }
  __host__ __device__ int64_t rows() const { return end[count - 1]; }
  // What the grid distributes: rows, or (SwiGLU) row pairs of two consecutive local rows each.
  __host__ __device__ int64_t units() const { return swiglu ? end[0] : rows(); }
  __host__ __device__ int rows_per_unit() const { return swiglu ? 2 : 1; }
  // Weight row of block b's local row j (the block owns units b, b + grid, ...).
  __device__ __forceinline__ int64_t weight_row(int64_t b, int64_t j, int64_t grid) const {
    return swiglu ? b + (j >> 1) * grid + (j & 1) * end[0] : b + j * grid;
  }

  // The part that owns weight row `row`, and where that part's rows start.
  __host__ __device__ int part_of(int64_t row) const {
    int p = 0;
    while (p + 1 < count && row >= end[p]) ++p;
    return p;
  }
  __host__ __device__ int64_t start(int p) const { return p > 0 ? end[p - 1] : 0; }

  // y[mi, row] = value + bias[row], in the part that owns weight row `row`. The lookup runs once
  // per output value, after the row's sums are complete, never in the weight stream.
  __device__ __forceinline__ void store(int64_t mi, int64_t row, float value) const {
    const int p = part_of(row);
    const int64_t local = row - start(p);
    y[p][mi * (end[p] - start(p)) + local] = value + (bias[p] ? bias[p][local] : 0.0f);
  }
  // SwiGLU unit i: the expressions of the separate path (bias add, then silu_mul's), bit for bit.
  __device__ __forceinline__ void store_swiglu(int64_t mi, int64_t i, float gate, float up) const {
    const float g = gate + (bias[0] ? bias[0][i] : 0.0f);
    const float u = up + (bias[1] ? bias[1][i] : 0.0f);
    y[0][mi * end[0] + i] = g / (1.0f + expf(-g)) * u;
  }
};

// Blocks of a persistent-grid GEMV: `resident` (what fits on the GPU at once), but at least
// enough that no block owns more rows than its partial sums hold (acc_floats / M), and at most
// one per `rows_per_warp` rows (a block with fewer would idle most of its warps).
inline int64_t gemv_grid(int64_t resident, const GemvOutputs& out, int M, int rows_per_warp, int acc_floats) {
  const int64_t units_per_block = acc_floats / (int64_t(M) * out.rows_per_unit());
  const int64_t grid = std::max(resident, (out.units() + units_per_block - 1) / units_per_block);
  return std::min(grid, (out.rows() + rows_per_warp - 1) / rows_per_warp);
}

// Weights are read exactly once per call: skip L1, and let L2 fetch whole 256-byte sectors.
__device__ __forceinline__ uint4 load_streaming(const void* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

// A warp's partial dot products -> the block's per-row partial sums in shared memory: each of
// the warp's R rows (rows g * R .. of the block's rows_here) and M activation rows is summed over
// the lanes, and lane 0 stores it in acc_s[j * M + mi] (the first x chunk) or adds it (later ones).
template <int M, int R>
__device__ __forceinline__ void add_warp_sums(const float (&acc)[M][R], int64_t g, int64_t rows_here,
                                              bool first_chunk, int lane, float* acc_s) {
#pragma unroll
  for (int mi = 0; mi < M; ++mi)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float s = acc[mi][r];
#pragma unroll
      for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
      const int64_t j = g * R + r;
      if (lane == 0 && j < rows_here) {
        float& slot = acc_s[j * M + mi];
        slot = first_chunk ? s : slot + s;
      }
    }
}

}  // namespace brisk::cuda
