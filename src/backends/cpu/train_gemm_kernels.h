// The contract between the training GEMM driver (train_gemm.cc: threads, cache blocking, packing;
// ISA-free) and its per-ISA register tiles (train_gemm_avx512.cc, train_gemm_avx2.cc).
#pragma once

#include <cstdint>

#include "backends/cpu/matmul_kernels.h"

namespace brisk::cpu::kernels {

// One register tile in outer-product form, R rows by up to V vectors of columns (R, V: the
// tile's index in OuterTiles::tile):
//   A(r, p) = a[r * a_row + p * a_step]   (read in place: rows of dy, or columns of dy)
//   B(p, j) = b[p * ldb + j]               (a packed panel: 64-byte aligned, zero past cols)
//   C[r * ldc + j] for r < R, j < cols, cols in (lanes * (V - 1), lanes * V]
// Every element of C is one fp32 FMA chain in ascending p, started from 0 (Store) or from C
// (Accumulate): acc = fma(A(r, p), B(p, j), acc). Every kernel set honours this order exactly, so
// results do not depend on the ISA, the tile shape, the cache blocking or the thread count.
// next_c, when not null, is where the tile the driver runs next starts (R rows of ldc, the same
// columns): a tile starts fetching those lines once its own C is loaded.
using OuterTileFn = void (*)(const float* a, int64_t a_row, int64_t a_step, const float* b, int64_t ldb,
                             int64_t depth, float* c, int64_t ldc, int64_t cols, TileOutput out,
                             const float* next_c);

constexpr int kMaxOuterRows = 8;
constexpr int kMaxOuterVectors = 4;

struct OuterTiles {
  int rows;     // rows of C in the main tile
  int vectors;  // vectors of columns in the main tile
  int lanes;    // floats per vector; a panel is vectors * lanes columns wide
  int depth;    // the longest depth chunk of a panel: C is read and written once per chunk
  OuterTileFn tile[kMaxOuterRows][kMaxOuterVectors];  // [R - 1][V - 1], R <= rows, V <= vectors
};

const OuterTiles* avx512_outer_tiles();
const OuterTiles* avx2_outer_tiles();

}  // namespace brisk::cpu::kernels
