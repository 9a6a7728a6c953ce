// The training GEMM driver: both backward products become one outer-product form
//   C[rows, cols] (+)= A[rows, depth] B[depth, cols],  B row-major, A read in place by strides
// (dx: C = dx, A = dy, B = w; dw: C = dw, A = dy^T, B = x). Threads split the rows of C; each
// thread cuts depth into chunks, packs B into panels (a chunk by one tile's width of columns) and
// runs the register tiles of train_gemm_kernels.h down its rows over each.
#include "backends/cpu/train_gemm.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/cpu_budgets.h"
#include "backends/cpu/scratch.h"
#include "backends/cpu/train_gemm_kernels.h"
#include "core/error.h"

namespace brisk::cpu {

namespace {

using kernels::OuterTiles;
using kernels::TileOutput;

// The A elements of a row block over a depth chunk are re-read by every panel, so a block holds
// what fits half of L2 (1 MiB per core on the Zen 5 this was tuned on); 256 KiB and 1 MiB
// measured slower (bench/notes-cpu-matmul.md, training GEMMs).
constexpr int64_t kRowBlockBytes = 512 * 1024;

struct Product {
  const float* a;  // A(r, p) = a[r * a_row + p * a_step]
  int64_t a_row, a_step;
  const float* b;  // B(p, j) = b[p * ldb + j]
  int64_t ldb;
  float* c;  // [rows, cols]
  int64_t rows, cols, depth;
  TileOutput first;  // the first depth chunk writes C (Store) or adds to it (Accumulate)
};

thread_local Scratch t_train_panel_scratch;

// Splits depth into equal chunks of at most max_len, so no short last chunk pays a whole pass
// over C.
int64_t depth_chunk_length(int64_t depth, int64_t max_len) {
  const int64_t chunks = (depth + max_len - 1) / max_len;
  return (depth + chunks - 1) / chunks;
}

// B rows [p0, p0 + len), columns [j0, j0 + cols) into panels [ceil(cols / width)][len, width],
// zero past cols. Row by row, so each source row is read in one ascending run.
void pack_panels(const Product& pr, int64_t p0, int64_t len, int64_t j0, int64_t cols, int64_t width,
                 float* panels) {
  for (int64_t p = 0; p < len; ++p) {
    const float* src = pr.b + (p0 + p) * pr.ldb + j0;
    for (int64_t j = 0; j < cols; j += width) {
      float* dst = panels + (j / width * len + p) * width;
      const int64_t n = std::min(width, cols - j);
      std::memcpy(dst, src + j, size_t(n) * sizeof(float));
      std::fill(dst + n, dst + width, 0.0f);
    }
  }
}

// C rows [r0, r1) over all columns and the whole depth. Loop order, outermost first: depth
// chunks, row blocks (their A fits L2), panels, tiles. With one row block, each panel is packed
// just before its tiles; with several, all panels of the chunk are packed once, ahead: packing
// each again per block (B read from L3 in short strided runs) measured 2-11% slower, and no row
// blocks (A re-read from L3 by every panel) 1-thread dw at m=2048 k=256 n=8192 151 -> 134 GFLOP/s.
void run_rows(const OuterTiles& tiles, const Product& pr, int64_t r0, int64_t r1) {
  const int64_t width = int64_t(tiles.vectors) * tiles.lanes;
  const int64_t kc = depth_chunk_length(pr.depth, tiles.depth);
  const int64_t mc = std::max<int64_t>(tiles.rows, kRowBlockBytes / (kc * int64_t(sizeof(float))) /
                                                       tiles.rows * tiles.rows);
  const bool ahead = r1 - r0 > mc;
  const int64_t panel_count = ahead ? (pr.cols + width - 1) / width : 1;
  auto* panels = static_cast<float*>(t_train_panel_scratch.get(size_t(panel_count * kc * width) * sizeof(float)));
  for (int64_t p0 = 0; p0 < pr.depth; p0 += kc) {
    const int64_t len = std::min(kc, pr.depth - p0);
    const TileOutput out = p0 == 0 ? pr.first : TileOutput::Accumulate;
    if (ahead) pack_panels(pr, p0, len, 0, pr.cols, width, panels);
    for (int64_t i0 = r0; i0 < r1; i0 += mc) {
      const int64_t i1 = std::min(r1, i0 + mc);
      for (int64_t j0 = 0; j0 < pr.cols; j0 += width) {
        const int64_t cols = std::min(width, pr.cols - j0);
        const int vectors = int((cols + tiles.lanes - 1) / tiles.lanes);
        if (!ahead) pack_panels(pr, p0, len, j0, cols, width, panels);
        const float* panel = ahead ? panels + j0 / width * len * width : panels;
        for (int64_t i = i0; i < i1; i += tiles.rows) {
          const int rows = int(std::min<int64_t>(tiles.rows, i1 - i));
          float* c = pr.c + i * pr.cols + j0;
          // Only a full next tile is announced: the kernel fetches R rows from next_c.
          const float* next_c = i + rows + tiles.rows <= i1 ? c + rows * pr.cols : nullptr;
          tiles.tile[rows - 1][vectors - 1](pr.a + i * pr.a_row + p0 * pr.a_step, pr.a_row, pr.a_step, panel,
                                            width, len, c, pr.cols, cols, out, next_c);
        }
      }
    }
  }
}

// Thread t of `parts` takes a contiguous block of whole tiles of rows.
void run_product(const OuterTiles& tiles, const Product& pr, ThreadPool& pool) {
  const int64_t tile_count = (pr.rows + tiles.rows - 1) / tiles.rows;
  const bool parallel = pr.rows * pr.cols * pr.depth >= kMinParallelMacs && pool.size() > 1 && tile_count > 1;
  if (!parallel) return run_rows(tiles, pr, 0, pr.rows);
  const int parts = int(std::min<int64_t>(tile_count, pool.size()));
  pool.run_on_all([&](int t) {
    if (t >= parts) return;
    const int64_t r0 = tile_count * t / parts * tiles.rows;
    const int64_t r1 = std::min(pr.rows, tile_count * (t + 1) / parts * tiles.rows);
    run_rows(tiles, pr, r0, r1);
  });
}

const OuterTiles& select_tiles(MatmulIsa isa) {
  if (isa == MatmulIsa::Auto)
    isa = matmul_isa_supported(MatmulIsa::Avx512, DType::F32) ? MatmulIsa::Avx512 : MatmulIsa::Avx2;
  BRISK_CHECK(matmul_isa_supported(isa, DType::F32), "train_gemm: the requested ISA is not supported on this CPU");
  return isa == MatmulIsa::Avx512 ? *kernels::avx512_outer_tiles() : *kernels::avx2_outer_tiles();
}

}  // namespace

void linear_input_grad(const float* dy, int64_t m, int64_t n, const float* w, int64_t k, float* dx,
                       ThreadPool& pool, MatmulIsa isa) {
  BRISK_CHECK(m >= 0 && n >= 0 && k >= 0, "linear_input_grad: negative size");
  if (m == 0 || k == 0) return;
  if (n == 0) return std::fill(dx, dx + m * k, 0.0f);
  run_product(select_tiles(isa), Product{dy, n, 1, w, k, dx, m, k, n, TileOutput::Store}, pool);
}

void linear_weight_grad(const float* dy, int64_t m, int64_t n, const float* x, int64_t k, float* dw,
                        ThreadPool& pool, MatmulIsa isa) {
  BRISK_CHECK(m >= 0 && n >= 0 && k >= 0, "linear_weight_grad: negative size");
  if (m == 0 || n == 0 || k == 0) return;
  run_product(select_tiles(isa), Product{dy, 1, n, x, k, dw, n, k, m, TileOutput::Accumulate}, pool);
}

}  // namespace brisk::cpu
