// The quantized matmul driver: prepares activations (zero-padded to whole blocks, quantized per
// token for w8a8, or per 32 values for the integer tiles), splits output rows over threads and
// blocks activation rows for L2.
#include "backends/cpu/matmul_quant.h"

#include "backends/cpu/cpu_budgets.h"
#include "backends/cpu/sparse_q8.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backends/cpu/matmul_quant_kernels.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/quant_blocks.h"

namespace brisk::cpu {

namespace {

using quant_kernels::Int8KernelSet;
using quant_kernels::Int8Rows;
using quant_kernels::kGroupValues;
using quant_kernels::kLanesPerGroup;
using quant_kernels::kTileCols;
using quant_kernels::kTileRows;
using quant_kernels::QuantKernelSet;


// Per calling thread, grown on demand: steady-state inference allocates nothing.
thread_local std::vector<uint8_t> t_x_scratch;
thread_local std::vector<float> t_x_scales;

struct Prepared {
  const void* x;         // fp32 rows or (Q8A8) u8 rows
  int64_t ldx;           // elements between rows
  size_t x_bytes;        // bytes per element
  const float* scales;   // Q8A8: per-row activation scales
};

Prepared prepare_activations(const float* x, int64_t m, int64_t k, int64_t padded_k, DType wtype,
                             bool parallel, ThreadPool& pool) {
  auto each_row = [&](const std::function<void(int64_t)>& fn) {
    if (parallel && m > 1)
      pool.parallel_for(m, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) fn(r);
      });
    else
      for (int64_t r = 0; r < m; ++r) fn(r);
  };
  if (wtype == DType::Q8A8) {
    t_x_scratch.resize(size_t(m * padded_k));
    t_x_scales.resize(size_t(m));
    uint8_t* xq = t_x_scratch.data();
    float* scales = t_x_scales.data();
    each_row([&](int64_t r) { scales[r] = quantize_activation_row_u8(x + r * k, k, padded_k, xq + r * padded_k); });
    return {xq, padded_k, 1, scales};
  }
  if (padded_k == k) return {x, k, sizeof(float), nullptr};
  // Kernels read whole blocks; the padding must be zeros (weights there are zero, but 0 * NaN
  // from stale memory would not be).
  t_x_scratch.resize(size_t(m * padded_k) * sizeof(float));
  float* xp = reinterpret_cast<float*>(t_x_scratch.data());
  each_row([&](int64_t r) {
    std::memcpy(xp + r * padded_k, x + r * k, size_t(k) * sizeof(float));
    std::fill(xp + r * padded_k + k, xp + (r + 1) * padded_k, 0.0f);
  });
  return {xp, padded_k, sizeof(float), nullptr};
}

// Portable path: each weight row decoded to fp32 once, dotted with every activation row (for
// Q8A8 the activations are the dequantized per-token codes, as in the reference).
void scalar_rows(const Prepared& px, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y,
                 int64_t n, int64_t n0, int64_t n1) {
  const QuantTraits& t = *quant_traits(w.dtype);
  const size_t rb = row_bytes(w.dtype, k);
  std::vector<float> wrow(static_cast<size_t>(k)), xrow(static_cast<size_t>(k));
  for (int64_t j = n0; j < n1; ++j) {
    t.dequantize_row(static_cast<const uint8_t*>(w.data) + size_t(j) * rb, k, wrow.data());
    for (int64_t i = 0; i < m; ++i) {
      const float* xi;
      if (px.scales) {
        const uint8_t* xq = static_cast<const uint8_t*>(px.x) + i * px.ldx;
        for (int64_t p = 0; p < k; ++p) xrow[size_t(p)] = float(int(xq[p]) - 128) * px.scales[i];
        xi = xrow.data();
      } else {
        xi = static_cast<const float*>(px.x) + i * px.ldx;
      }
      float sum = 0.0f;
      for (int64_t p = 0; p < k; ++p) sum += xi[p] * wrow[size_t(p)];
      y[i * n + j] = sum + (bias ? bias[j] : 0.0f);
    }
  }
}

// Output rows n0..n1 over all m activation rows (x_row_bytes each): activation blocks (L2)
// outermost, then weight tiles (streamed), then activation tiles (the tile's weight rows stay in
// L1/L2). tile(r0, rows, c0, cols) runs one register tile.
template <class Tile>
void for_each_tile(int64_t m, int64_t x_row_bytes, int64_t n0, int64_t n1, Tile tile) {
  const int64_t mb = std::max<int64_t>(kTileCols, kActivationBlockBytes / x_row_bytes / kTileCols * kTileCols);
  for (int64_t m0 = 0; m0 < m; m0 += mb) {
    const int64_t m1 = std::min(m, m0 + mb);
    for (int64_t r0 = n0; r0 < n1; r0 += kTileRows)
      for (int64_t c0 = m0; c0 < m1; c0 += kTileCols)
        tile(r0, std::min<int64_t>(kTileRows, n1 - r0), c0, std::min<int64_t>(kTileCols, m1 - c0));
  }
}

void tiled_rows(const QuantKernelSet& ks, const Prepared& px, int64_t m, int64_t k, const Tensor& w,
                const float* bias, float* y, int64_t n, int64_t n0, int64_t n1) {
  const int64_t n_blocks = (k + dtype_block(w.dtype) - 1) / dtype_block(w.dtype);
  const size_t ldw = row_bytes(w.dtype, k);
  const int64_t row_bytes_x = px.ldx * int64_t(px.x_bytes);
  const auto* wbase = static_cast<const uint8_t*>(w.data);
  for_each_tile(m, row_bytes_x, n0, n1, [&](int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
    ks.tile[rows - 1][cols - 1](static_cast<const uint8_t*>(px.x) + c0 * row_bytes_x, px.ldx,
                                px.scales ? px.scales + c0 : nullptr, wbase + size_t(r0) * ldw, ldw, n_blocks,
                                y + c0 * n + r0, n, bias ? bias + r0 : nullptr);
  });
}

// ---- int8 activations for the integer tiles of weight-only formats ----

thread_local std::vector<int8_t> t_codes;
thread_local std::vector<float> t_lane_scales, t_row_sums;
thread_local std::vector<int32_t> t_lane_sums;

// Every row in the set's form (Int8KernelSet::prepare_row); the buffers are per calling thread.
Int8Rows prepare_int8_activations(const float* x, int64_t m, int64_t k, int64_t padded_k, const Int8KernelSet& ks,
                                  bool parallel, ThreadPool& pool) {
  const int64_t lanes = padded_k / ks.group * kLanesPerGroup;
  t_codes.resize(size_t(m * padded_k));
  t_lane_scales.resize(size_t(m * lanes));
  t_lane_sums.resize(size_t(m * lanes));
  t_row_sums.resize(size_t(m));
  int8_t* codes = t_codes.data();
  float *lane_scales = t_lane_scales.data(), *row_sums = t_row_sums.data();
  int32_t* lane_sums = t_lane_sums.data();
  auto row = [&](int64_t r) {
    ks.prepare_row(x + r * k, k, padded_k, codes + r * padded_k, lane_scales + r * lanes, lane_sums + r * lanes,
                   row_sums + r);
  };
  if (parallel && m > 1)
    pool.parallel_for(m, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) row(r);
    });
  else
    for (int64_t r = 0; r < m; ++r) row(r);
  return {codes, lane_scales, lane_sums, row_sums, padded_k};
}

// Where row r starts, and the strides a tile walks, in each BlockOrder. SparseRows: the start of
// r's group of 8 rows, and in place of the row stride the tile's first row in that group.
struct BlockAddressing {
  const uint8_t* base;
  size_t row_bytes, block_bytes;
  bool interleaved;
  const Tensor* sparse = nullptr;

  BlockAddressing(const Tensor& w, int64_t k)
      : base(static_cast<const uint8_t*>(w.data)),
        row_bytes(brisk::row_bytes(w.dtype, k)),
        block_bytes(dtype_size(w.dtype)),
        interleaved(w.block_order == BlockOrder::Interleaved8),
        sparse(w.block_order == BlockOrder::SparseRows ? &w : nullptr) {}
  const uint8_t* row(int64_t r) const {
    if (sparse) return sparse_q8_row_group(*sparse, r);
    if (!interleaved) return base + size_t(r) * row_bytes;
    return base + size_t(r / kInterleaveRows) * kInterleaveRows * row_bytes +
           size_t(r % kInterleaveRows) * block_bytes;
  }
  size_t ldw(int64_t r0) const {
    if (sparse) return size_t(r0 % kSparseRowGroup);
    return interleaved ? block_bytes : row_bytes;
  }
  size_t block_stride() const { return interleaved ? kInterleaveRows * block_bytes : block_bytes; }
};

// Tiles never straddle a group of kInterleaveRows rows: threads split at whole groups
// (matmul_quant_same_input), decode tiles are one group, and the others are kTileRows rows, a
// divisor of the group, starting at multiples of kTileRows.
static_assert(kInterleaveRows == quant_kernels::kDecodeRows && kInterleaveRows % kTileRows == 0);

void int8_tiled_rows(const Int8KernelSet& ks, const Int8Rows& px, int64_t m, int64_t k, const Tensor& w,
                     const float* bias, float* y, int64_t n, int64_t n0, int64_t n1) {
  const int64_t n_blocks = px.ld / dtype_block(w.dtype);
  const int64_t lanes = px.ld / ks.group * kLanesPerGroup;
  const BlockAddressing at(w, k);
  const size_t block_stride = at.block_stride();
  auto xc = [&](int64_t c0) {
    return Int8Rows{px.codes + c0 * px.ld, px.lane_scales + c0 * lanes, px.lane_sums + c0 * lanes, px.row_sums + c0,
                    px.ld};
  };
  if (m == 1) {
    // Decode: the widest tile streams the most weight rows at once for the one activation row.
    int64_t r0 = n0;
    for (; r0 + quant_kernels::kDecodeRows <= n1; r0 += quant_kernels::kDecodeRows)
      ks.decode_tile(xc(0), at.row(r0), at.ldw(r0), block_stride, n_blocks, y + r0, n, bias ? bias + r0 : nullptr);
    for (; r0 < n1; r0 += kTileRows) {
      const int64_t rows = std::min<int64_t>(kTileRows, n1 - r0);
      ks.tile[rows - 1][0](xc(0), at.row(r0), at.ldw(r0), block_stride, n_blocks, y + r0, n, bias ? bias + r0 : nullptr);
    }
    return;
  }
  for_each_tile(m, px.ld + lanes * 8, n0, n1, [&](int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
    ks.tile[rows - 1][cols - 1](xc(c0), at.row(r0), at.ldw(r0), block_stride, n_blocks, y + c0 * n + r0, n,
                                bias ? bias + r0 : nullptr);
  });
}

}  // namespace

bool interleaves_for_decode(const Tensor& w) {
  return w.block_order == BlockOrder::RowMajor && w.rank() == 2 && w.dim(0) % kInterleaveRows == 0 &&
         quant_kernels_supported(QuantKernels::Avx512Int8, w.dtype);
}

void interleave_rows(const Tensor& w, void* out) {
  BRISK_CHECK(interleaves_for_decode(w), "interleave_rows: " + shape_string(w.shape) + " " +
                                             std::string(dtype_name(w.dtype)) + " has no interleaved layout");
  const int64_t n = w.dim(0), n_blocks = (w.dim(1) + dtype_block(w.dtype) - 1) / dtype_block(w.dtype);
  const size_t rb = row_bytes(w.dtype, w.dim(1)), bb = dtype_size(w.dtype);
  const auto* src = static_cast<const uint8_t*>(w.data);
  auto* dst = static_cast<uint8_t*>(out);
  for (int64_t g = 0; g < n; g += kInterleaveRows)
    for (int64_t b = 0; b < n_blocks; ++b)
      for (int64_t r = g; r < g + kInterleaveRows; ++r, dst += bb)
        std::memcpy(dst, src + size_t(r) * rb + size_t(b) * bb, bb);
}

bool quant_kernels_supported(QuantKernels which, DType wtype) {
  if (!quant_traits(wtype)) return false;
  const CpuFeatures& f = cpu_features();
  const bool avx512 = f.avx512f && f.avx512bw && f.f16c && (wtype != DType::Q8A8 || f.avx512vnni) &&
                      quant_kernels::avx512_quant_kernels(wtype) != nullptr;
  const bool avx512_int8 = f.avx512f && f.avx512bw && f.f16c && f.avx512vnni &&
                           quant_kernels::avx512_vnni_int8_kernels(wtype) != nullptr;
  switch (which) {
    case QuantKernels::Avx512Int8: return avx512_int8;
    case QuantKernels::Avx512: return avx512;
    case QuantKernels::Auto:
    case QuantKernels::Scalar: return true;
  }
  return false;
}

void matmul_quant(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y,
                  ThreadPool& pool, QuantKernels which) {
  const MatmulTarget target{&w, bias, y};
  matmul_quant_same_input(x, m, k, &target, 1, pool, which);
}

void matmul_quant_same_input(const float* x, int64_t m, int64_t k, const MatmulTarget* targets, int n_targets,
                             ThreadPool& pool, QuantKernels which) {
  BRISK_CHECK(n_targets > 0, "matmul_quant: no weights");
  const DType wtype = targets[0].w->dtype;
  int64_t macs = 0;
  for (int i = 0; i < n_targets; ++i) {
    const Tensor& w = *targets[i].w;
    BRISK_CHECK(quant_traits(w.dtype) != nullptr,
                "matmul_quant: " + std::string(dtype_name(w.dtype)) + " is not a quantized format");
    BRISK_CHECK(w.dtype == wtype, "matmul_quant: weights of one call share a dtype");
    BRISK_CHECK(w.rank() == 2 && w.dim(1) == k,
                "matmul_quant: weight " + shape_string(w.shape) + " is not [n, " + std::to_string(k) + "]");
    macs += m * k * w.dim(0);
  }
  BRISK_CHECK(quant_kernels_supported(which, wtype), "matmul_quant: kernels not supported on this CPU");
  if (macs == 0) return;
  if (which == QuantKernels::Auto) {
    which = QuantKernels::Scalar;
    for (QuantKernels kind : {QuantKernels::Avx512Int8, QuantKernels::Avx512})
      if (which == QuantKernels::Scalar && quant_kernels_supported(kind, wtype)) which = kind;
  }
  for (int i = 0; i < n_targets; ++i)
    BRISK_CHECK(targets[i].w->block_order == BlockOrder::RowMajor || which == QuantKernels::Avx512Int8,
                "matmul_quant: interleaved and sparse weights need the integer tiles");

  const int64_t block = dtype_block(wtype);
  const int64_t padded_k = (k + block - 1) / block * block;
  const bool parallel = macs >= kMinParallelMacs && pool.size() > 1;
  const quant_kernels::Int8KernelSet* int8_set =
      which == QuantKernels::Avx512Int8 ? quant_kernels::avx512_vnni_int8_kernels(wtype) : nullptr;
  // Prepared once for every weight (q, k, v or gate, up read the same x).
  Prepared px{};
  Int8Rows qx{};
  if (int8_set)
    qx = prepare_int8_activations(x, m, k, padded_k, *int8_set, parallel, pool);
  else
    px = prepare_activations(x, m, k, padded_k, wtype, parallel, pool);

  auto run = [&](const MatmulTarget& t, int64_t n0, int64_t n1) {
    const int64_t n = t.w->dim(0);
    if (int8_set && t.w->block_order == BlockOrder::SparseRows)  // the same activations: the dense Q8 tiles' form
      int8_tiled_rows(*quant_kernels::avx512_sparse_q8_kernels(), qx, m, k, *t.w, t.bias, t.y, n, n0, n1);
    else if (int8_set)
      int8_tiled_rows(*int8_set, qx, m, k, *t.w, t.bias, t.y, n, n0, n1);
    else if (which == QuantKernels::Scalar)
      scalar_rows(px, m, k, *t.w, t.bias, t.y, n, n0, n1);
    else
      tiled_rows(*quant_kernels::avx512_quant_kernels(wtype), px, m, k, *t.w, t.bias, t.y, n, n0, n1);
  };
  if (!parallel) {
    for (int i = 0; i < n_targets; ++i) run(targets[i], 0, targets[i].w->dim(0));
    return;
  }
  // One parallel job: every thread takes a contiguous run of whole decode tiles (whole
  // interleaved groups) of each weight, so it streams its own weight rows once and the threads
  // meet once for all the weights.
  pool.run_on_all([&](int t) {
    for (int i = 0; i < n_targets; ++i) {
      const int64_t n = targets[i].w->dim(0), groups = (n + kInterleaveRows - 1) / kInterleaveRows;
      const int parts = int(std::min<int64_t>(groups, pool.size()));
      if (t >= parts) continue;
      const int64_t g0 = groups * t / parts, g1 = groups * (t + 1) / parts;
      run(targets[i], g0 * kInterleaveRows, std::min(n, g1 * kInterleaveRows));
    }
  });
}

}  // namespace brisk::cpu
