// The matmul driver: picks a kernel family, rounds activations to bf16 when the kernels want it,
// splits output features over threads and blocks the loops for the caches. Arithmetic lives in
// the per-ISA tile kernels (matmul_kernels.h).
#include "backends/cpu/matmul.h"

#include <xmmintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/cpu/cpu_budgets.h"
#include "backends/cpu/matmul_kernels.h"
#include "backends/cpu/scratch.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "ops/backend.h"

namespace brisk::cpu {

namespace {

using kernels::KernelSet;
using kernels::TileOutput;

// Cache budgets (per core: 48 KiB L1d, 1 MiB L2 on the Zen 5 this was tuned on; the activation
// block's in cpu_budgets.h). A panel (the weight rows of one tile over a k-chunk) is re-read from
// L1 by every tile of activation rows, so it takes half of L1 and leaves the rest to the
// activation stream: 24 KiB lets k = 2048 bf16 run unchunked (16 KiB measured ~10% slower). See
// bench/notes-cpu-matmul.md.
constexpr int64_t kPanelBytes = 24 * 1024;
// A packed panel (outer-product tiles) is re-read by every activation tile, from L1/L2; the
// activation rows of a k-chunk are re-read by every panel, from L2.
constexpr int64_t kPackedPanelBytes = 48 * 1024;
// Below this many activation rows, packing a panel costs more than the lane sums it saves
// (bench/notes-cpu-matmul.md item 34).
constexpr int64_t kMinPackedRows = 64;
// From this many activation rows, threads split the rows of stored (pair-packed) weights instead
// of their features: each then reads only activations it rounded itself and writes only its own
// output rows, where split features pass every activation row between the cores (~5% of a
// sotu-llama prefill; notes item 35). Per-call packing would be repeated by every thread.
constexpr int64_t kMinRowSplit = 64;

// Splits k into equal chunks of at most max_len (multiples of 64, so every chunk but the last
// holds whole vector steps): equal chunks avoid a short last chunk paying a full reduction.
int64_t chunk_length(int64_t k, int64_t max_len) {
  max_len = std::max<int64_t>(64, max_len / 64 * 64);
  const int64_t chunks = (k + max_len - 1) / max_len;
  return round_up((k + chunks - 1) / chunks, 64);
}

const KernelSet* select_kernels(MatmulIsa isa, DType wtype, Bf16Math math) {
  if (isa == MatmulIsa::Auto) {
    if (math == Bf16Math::Dot && !matmul_isa_supported(MatmulIsa::Avx512, wtype, math)) math = Bf16Math::Exact;
    isa = matmul_isa_supported(MatmulIsa::Avx512, wtype, math) ? MatmulIsa::Avx512 : MatmulIsa::Avx2;
  }
  BRISK_CHECK(matmul_isa_supported(isa, wtype, math),
              "matmul: kernels for " + std::string(dtype_name(wtype)) + " not supported on this CPU");
  return isa == MatmulIsa::Avx512 ? kernels::avx512_kernels(wtype, math == Bf16Math::Dot)
                                  : kernels::avx2_kernels(wtype);
}

// Activations rounded to bf16 (or copied into padded rows) and packed weight panels.
thread_local Scratch t_activation_scratch;
thread_local Scratch t_panel_scratch;  // packed weight panels, one per worker thread

struct Operands {
  const char* x;  // fp32 [m, ldx] or bf16 [m, ldx]
  int64_t ldx;
  size_t x_size;
  int64_t m, k, n;
  const char* w;  // [n, k]
  size_t w_size;
  const float* bias;
  float* y;  // [m, n]
  const kernels::PackedKernels* packed;  // outer-product tiles when non-null (BF16 dot, many rows)
  bool pre_packed;                       // w is BlockOrder::Bf16Pairs (panels packed at upload)
};

// Outer-product tiles for weights stored as pairs (at every m) or packed per call (many rows).
const kernels::PackedKernels* select_packed(MatmulIsa isa, const Tensor& w, Bf16Math math, int64_t m) {
  const bool supported = w.dtype == DType::BF16 && math == Bf16Math::Dot && isa != MatmulIsa::Avx2 &&
                         matmul_isa_supported(MatmulIsa::Avx512, w.dtype, math);
  if (w.block_order == BlockOrder::Bf16Pairs) {
    BRISK_CHECK(supported, "matmul: pair-packed BF16 weights need AVX512-BF16 dot products");
    return kernels::avx512_packed_bf16_kernels();
  }
  BRISK_CHECK(w.block_order == BlockOrder::RowMajor, "matmul: weights in an unknown layout");
  return supported && m >= kMinPackedRows ? kernels::avx512_packed_bf16_kernels() : nullptr;
}

// Prefetches lines [first, first + count) of a box of weight rows (rows x row_bytes, ldw_bytes
// apart) into L2.
void prefetch_rows(const char* w, int64_t ldw_bytes, int64_t rows, int64_t row_bytes, int64_t first,
                   int64_t count) {
  const int64_t lines_per_row = (row_bytes + 63) / 64;
  const int64_t end = std::min(first + count, rows * lines_per_row);
  for (int64_t line = first; line < end; ++line)
    _mm_prefetch(w + (line / lines_per_row) * ldw_bytes + (line % lines_per_row) * 64, _MM_HINT_T1);
}

// run_rows in outer-product form: per k-chunk, each panel of 16 * vectors weight rows is packed
// once and then multiplied by every activation row. Packing would wait on memory for each
// panel's weights; the tiles of one panel prefetch the next panel's instead, a share each.
void run_rows_packed(const Operands& op, int64_t m_begin, int64_t m_end, int64_t n_begin, int64_t n_end) {
  const kernels::PackedKernels& pk = *op.packed;
  const int64_t width = 16 * int64_t(pk.vectors);
  const int64_t kb = chunk_length(op.k, kPackedPanelBytes / (width * int64_t(op.w_size)));
  void* scratch = op.pre_packed ? nullptr : t_panel_scratch.get(size_t(width * round_up(kb, 2)) * op.w_size);
  const int64_t ldw_bytes = op.k * int64_t(op.w_size);
  const int64_t tiles = (m_end - m_begin + pk.rows - 1) / pk.rows;
  for (int64_t k0 = 0; k0 < op.k; k0 += kb) {
    const int64_t k_len = std::min(kb, op.k - k0);
    const TileOutput out = k0 == 0 ? TileOutput::Store : TileOutput::Accumulate;
    for (int64_t n0 = n_begin; n0 < n_end; n0 += width) {
      const int64_t n_cols = std::min(width, n_end - n0);
      const int vectors = int((n_cols + 15) / 16);
      // A stored panel starts at its first row's bytes (panels are whole rows x k) and its
      // k-chunk k0 / 2 pair rows of width n_cols further.
      const void* panel = op.pre_packed ? op.w + n0 * ldw_bytes + (k0 / 2) * n_cols * 4 : scratch;
      if (!op.pre_packed)
        pk.pack(op.w + n0 * ldw_bytes + k0 * int64_t(op.w_size), op.k, n_cols, k_len, vectors, scratch);
      // The next panel: the next rows of this k-chunk, else the first rows of the next chunk.
      int64_t next_n = n0 + width, next_k = k0;
      if (next_n >= n_end) next_n = n_begin, next_k = k0 + kb;
      const int64_t next_rows = next_k < op.k && !op.pre_packed ? std::min(width, n_end - next_n) : 0;
      const int64_t next_bytes = std::min(kb, op.k - next_k) * int64_t(op.w_size);
      const int64_t share = (next_rows * ((next_bytes + 63) / 64) + tiles - 1) / tiles;
      const char* next = op.w + next_n * ldw_bytes + next_k * int64_t(op.w_size);
      const float* bias = op.bias ? op.bias + n0 : nullptr;
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t i = m_begin + t * pk.rows, r = std::min<int64_t>(pk.rows, m_end - i);
        if (next_rows > 0) prefetch_rows(next, ldw_bytes, next_rows, next_bytes, t * share, share);
        pk.tile[r - 1][vectors - 1](op.x + (i * op.ldx + k0) * int64_t(op.x_size), op.ldx, panel, k_len,
                                    op.y + i * op.n + n0, op.n, n_cols, bias, out);
      }
    }
  }
}

// The three regimes of KernelSet (matmul_kernels.h), by activation rows.
enum class Rows { One, Few, Many };
Rows rows_regime(int64_t m) { return m == 1 ? Rows::One : m <= kDecodeOrderRows ? Rows::Few : Rows::Many; }

// Weight rows and activation rows of the regime's main tile.
int64_t tile_rows(const KernelSet& ks, Rows regime) {
  return regime == Rows::One ? ks.decode_rows : regime == Rows::Few ? ks.few_rows : ks.rows;
}
int64_t tile_cols(const KernelSet& ks, Rows regime) {
  return regime == Rows::One ? 1 : regime == Rows::Few ? ks.few_cols : ks.cols;
}

// One weight panel (rows r from n0, k-chunk k0..k0+k_len) against activation rows m0..m1.
void run_panel(const KernelSet& ks, const Operands& op, int64_t n0, int64_t r, int64_t k0, int64_t k_len,
               int64_t m0, int64_t m1, int64_t cols) {
  const char* w = op.w + (n0 * op.k + k0) * int64_t(op.w_size);
  const float* bias = op.bias ? op.bias + n0 : nullptr;
  const TileOutput out = k0 == 0 ? TileOutput::Store : TileOutput::Accumulate;
  const Rows regime = rows_regime(op.m);
  for (int64_t i = m0; i < m1; i += cols) {
    const int64_t c = std::min(cols, m1 - i);
    kernels::TileFn fn = regime == Rows::One   ? ks.decode_tile[r - 1]
                         : regime == Rows::Few ? ks.few_tile[r - 1][c - 1]
                                               : ks.tile[r - 1][c - 1];
    BRISK_CHECK(fn != nullptr, "matmul: missing tile kernel");
    fn(op.x + (i * op.ldx + k0) * int64_t(op.x_size), op.ldx, w, op.k, k_len, op.y + i * op.n + n0, op.n,
       bias, out);
  }
}

// Computes y[:, n_begin:n_end] over all of m and k. Loop order, outermost first: k-chunks (so a
// panel fits L1), activation blocks (L2), weight panels (streamed from memory once per block),
// activation tiles (the panel is reused from L1).
void run_rows(const KernelSet& ks, const Operands& op, int64_t n_begin, int64_t n_end) {
  if (op.packed) return run_rows_packed(op, 0, op.m, n_begin, n_end);
  const Rows regime = rows_regime(op.m);
  const int64_t rows = tile_rows(ks, regime), cols = tile_cols(ks, regime);
  // Decode order sums whole rows (a k-chunk would add its sums into y in another order); a single
  // activation row reuses nothing anyway, so it skips k-chunking and its extra passes.
  const int64_t kb = regime != Rows::Many ? op.k : chunk_length(op.k, kPanelBytes / (rows * int64_t(op.w_size)));
  const int64_t mb = std::max(cols, kActivationBlockBytes / (kb * int64_t(op.x_size)) / cols * cols);
  for (int64_t k0 = 0; k0 < op.k; k0 += kb) {
    const int64_t k_len = std::min(kb, op.k - k0);
    for (int64_t m0 = 0; m0 < op.m; m0 += mb) {
      const int64_t m1 = std::min(op.m, m0 + mb);
      for (int64_t n0 = n_begin; n0 < n_end; n0 += rows)
        run_panel(ks, op, n0, std::min(rows, n_end - n0), k0, k_len, m0, m1, cols);
    }
  }
}

// Thread t's share of all output features when `parts` threads split them: a contiguous block of
// whole tiles, so each thread streams its own weight rows once.
void run_share(const KernelSet& ks, const Operands& op, int t, int parts) {
  // Stored panels are whole: a share starts on one.
  const int64_t rows = op.pre_packed ? 16 * op.packed->vectors
                       : op.packed   ? 16
                                     : tile_rows(ks, rows_regime(op.m));
  const int64_t groups = (op.n + rows - 1) / rows;
  parts = int(std::min<int64_t>(groups, parts));
  if (t >= parts) return;
  const int64_t g0 = groups * t / parts, g1 = groups * (t + 1) / parts;
  run_rows(ks, op, g0 * rows, std::min(op.n, g1 * rows));
}

// Points op.x at the activations in the form the tiles read best. bf16 kernels get x rounded to
// bf16 once per call (not once per tile: tiles re-read activations many times); exact bf16 decode
// gets its row split into even and odd elements (see XForm). Rows a multiple of 4 KiB apart would
// put the same k offset of every row of an activation tile in one L1 set, on top of the panel rows
// that may already share it; padding each row by one cache line breaks that (fp32, k = 2048: +11%
// prefill, for the price of one copy of x).
// With round_now false, bf16 rows are only laid out (op.x, op.ldx): the caller rounds them.
void prepare_activations(const KernelSet& ks, const float* x, int64_t m, int64_t k, bool parallel,
                         bool round_now, ThreadPool& pool, Operands& op) {
  const kernels::XForm form = rows_regime(m) == Rows::Many ? ks.x_form : ks.decode_x_form;
  if (form == kernels::XForm::Bf16) {
    int64_t ldx = round_up(k, 32);
    if (ldx * int64_t(sizeof(uint16_t)) % 4096 == 0) ldx += 32;
    auto* xb = static_cast<uint16_t*>(t_activation_scratch.get(size_t(m * ldx) * sizeof(uint16_t)));
    auto round = [&](int64_t r0, int64_t r1) {
      kernels::round_rows_to_bf16_avx512(x + r0 * k, r1 - r0, k, xb + r0 * ldx, ldx);
    };
    if (round_now && parallel && m > 1)
      pool.parallel_for(m, round);
    else if (round_now)
      round(0, m);
    op.x = reinterpret_cast<const char*>(xb);
    op.ldx = ldx;
    op.x_size = sizeof(uint16_t);
  } else if (form == kernels::XForm::F32EvenOdd) {
    int64_t ldx = round_up(k, 32);
    if (m > 1 && ldx * int64_t(sizeof(float)) % 4096 == 0) ldx += 16;
    auto* xs = static_cast<float*>(t_activation_scratch.get(size_t(m * ldx) * sizeof(float)));
    for (int64_t r = 0; r < m; ++r) kernels::split_even_odd_avx512(x + r * k, k, xs + r * ldx);
    op.x = reinterpret_cast<const char*>(xs);
    op.ldx = ldx;
  } else if (m > 1 && k * int64_t(sizeof(float)) % 4096 == 0) {
    const int64_t ldx = k + 16;
    auto* xf = static_cast<float*>(t_activation_scratch.get(size_t(m * ldx) * sizeof(float)));
    auto copy = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) std::memcpy(xf + r * ldx, x + r * k, size_t(k) * sizeof(float));
    };
    if (parallel)
      pool.parallel_for(m, copy);
    else
      copy(0, m);
    op.x = reinterpret_cast<const char*>(xf);
    op.ldx = ldx;
  }
}

// Runs ops (products of the same fp32 x, one kernel set) to completion. With stored panels and
// many rows the threads split rows, and each rounds its own rows of x inside the same job: one
// job instead of two, and no activation row crosses cores.
void run_job(const KernelSet& ks, const float* x, Operands* ops, int n_ops, bool parallel, ThreadPool& pool) {
  const int64_t m = ops[0].m, k = ops[0].k;
  bool split_rows = parallel && m >= kMinRowSplit;
  for (int i = 0; i < n_ops; ++i) split_rows = split_rows && ops[i].pre_packed;
  prepare_activations(ks, x, m, k, parallel, !split_rows, pool, ops[0]);
  for (int i = 1; i < n_ops; ++i) {
    ops[i].x = ops[0].x;
    ops[i].ldx = ops[0].ldx;
    ops[i].x_size = ops[0].x_size;
  }
  if (!parallel) {
    for (int i = 0; i < n_ops; ++i) run_rows(ks, ops[i], 0, ops[i].n);
  } else if (split_rows) {
    const int parts = int(std::min<int64_t>(m, pool.size()));
    auto* xb = reinterpret_cast<uint16_t*>(const_cast<char*>(ops[0].x));
    const int64_t ldx = ops[0].ldx;
    pool.run_on_all([&](int t) {
      if (t >= parts) return;
      const int64_t r0 = m * t / parts, r1 = m * (t + 1) / parts;
      kernels::round_rows_to_bf16_avx512(x + r0 * k, r1 - r0, k, xb + r0 * ldx, ldx);
      for (int i = 0; i < n_ops; ++i) run_rows_packed(ops[i], r0, r1, 0, ops[i].n);
    });
  } else {
    pool.run_on_all([&](int t) {
      for (int i = 0; i < n_ops; ++i) run_share(ks, ops[i], t, pool.size());
    });
  }
}

}  // namespace

bool packs_bf16_pairs(const Tensor& w) {
  return w.dtype == DType::BF16 && w.rank() == 2 && w.block_order == BlockOrder::RowMajor &&
         w.dim(0) % 16 == 0 && w.dim(1) % 2 == 0 && w.dim(1) > 0 &&
         matmul_isa_supported(MatmulIsa::Avx512, DType::BF16, Bf16Math::Dot);
}

void pack_bf16_pairs(const Tensor& w, void* out) {
  BRISK_CHECK(packs_bf16_pairs(w), "pack_bf16_pairs: " + shape_string(w.shape) + " " +
                                       std::string(dtype_name(w.dtype)) + " cannot be pair-packed here");
  const kernels::PackedKernels& pk = *kernels::avx512_packed_bf16_kernels();
  const int64_t n = w.dim(0), k = w.dim(1), width = 16 * int64_t(pk.vectors);
  const auto* src = static_cast<const uint16_t*>(w.data);
  auto* dst = static_cast<uint16_t*>(out);
  for (int64_t n0 = 0; n0 < n; n0 += width) {  // a panel holds its rows' elements, in pairs
    const int64_t cols = std::min(width, n - n0);
    pk.pack(src + n0 * k, k, cols, k, int(cols / 16), dst + n0 * k);
  }
}

bool matmul_isa_supported(MatmulIsa isa, DType wtype, Bf16Math math) {
  const CpuFeatures& f = cpu_features();
  const bool is_float = wtype == DType::F32 || wtype == DType::F16 || wtype == DType::BF16;
  switch (isa) {
    case MatmulIsa::Auto:
      return is_float && (matmul_isa_supported(MatmulIsa::Avx512, wtype, math) ||
                           matmul_isa_supported(MatmulIsa::Avx2, wtype, math));
    case MatmulIsa::Avx512:
      // The kernel file is compiled with BW/VL/DQ too; every AVX-512 core with BW has VL and DQ.
      return is_float && f.avx512f && f.avx512bw && f.f16c &&
             (wtype != DType::BF16 || math == Bf16Math::Exact || f.avx512bf16);
    case MatmulIsa::Avx2:  // widens bf16: Exact only
      return is_float && f.avx2 && f.fma && f.f16c && (wtype != DType::BF16 || math == Bf16Math::Exact);
  }
  return false;
}

void matmul_with_isa(MatmulIsa isa, const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                     float* y, ThreadPool& pool, Bf16Math math) {
  BRISK_CHECK(w.rank() == 2 && w.dim(1) == k,
              "matmul: weight " + shape_string(w.shape) + " is not [n, " + std::to_string(k) + "]");
  BRISK_CHECK(m >= 0 && k >= 0, "matmul: negative size");
  const int64_t n = w.dim(0);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) y[i * n + j] = bias ? bias[j] : 0.0f;
    return;
  }
  const KernelSet& ks = *select_kernels(isa, w.dtype, math);

  Operands op{reinterpret_cast<const char*>(x),
              k,
              sizeof(float),
              m,
              k,
              n,
              static_cast<const char*>(w.data),
              dtype_size(w.dtype),
              bias,
              y,
              select_packed(isa, w, math, m),
              w.block_order == BlockOrder::Bf16Pairs};
  // A single tile of rows cannot be split: waking the other threads would buy nothing.
  const bool parallel = m * n * k >= kMinParallelMacs && pool.size() > 1 && n > tile_rows(ks, rows_regime(m));
  run_job(ks, x, &op, 1, parallel, pool);
}

void matmul_same_input(const float* x, int64_t m, int64_t k, const MatmulTarget* targets, int n_targets,
                       ThreadPool& pool, Bf16Math math) {
  constexpr int kMaxTargets = 4;
  bool fused = n_targets > 0 && n_targets <= kMaxTargets && m > 0 && k > 0;
  for (int i = 0; fused && i < n_targets; ++i) {
    const Tensor& w = *targets[i].w;
    fused = w.dtype == targets[0].w->dtype && w.rank() == 2 && w.dim(1) == k && w.dim(0) > 0 &&
            matmul_isa_supported(MatmulIsa::Auto, w.dtype, math);
  }
  if (!fused) {
    for (int i = 0; i < n_targets; ++i) matmul(x, m, k, *targets[i].w, targets[i].bias, targets[i].y, pool, math);
    return;
  }
  const KernelSet& ks = *select_kernels(MatmulIsa::Auto, targets[0].w->dtype, math);
  int64_t macs = 0;
  for (int i = 0; i < n_targets; ++i) macs += m * k * targets[i].w->dim(0);
  const bool parallel = macs >= kMinParallelMacs && pool.size() > 1;
  Operands base{reinterpret_cast<const char*>(x), k,       sizeof(float), m,       k,    0, nullptr,
                dtype_size(targets[0].w->dtype),  nullptr, nullptr,       nullptr, false};
  Operands ops[kMaxTargets];
  for (int i = 0; i < n_targets; ++i) {
    ops[i] = base;
    ops[i].n = targets[i].w->dim(0);
    ops[i].w = static_cast<const char*>(targets[i].w->data);
    ops[i].bias = targets[i].bias;
    ops[i].y = targets[i].y;
    ops[i].packed = select_packed(MatmulIsa::Auto, *targets[i].w, math, m);
    ops[i].pre_packed = targets[i].w->block_order == BlockOrder::Bf16Pairs;
  }
  run_job(ks, x, ops, n_targets, parallel, pool);
}

void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y,
            ThreadPool& pool, Bf16Math math) {
  matmul_with_isa(MatmulIsa::Auto, x, m, k, w, bias, y, pool, math);
}

}  // namespace brisk::cpu
