// The contract between the matmul driver (matmul.cc: threading and cache blocking, ISA-free) and
// the per-ISA tile kernels (matmul_avx512.cc, matmul_avx2.cc, each compiled with its own flags).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace brisk::cpu::kernels {

enum class TileOutput : uint8_t { Store, Accumulate };

// One register tile in dot-product form, rows weight rows by cols activation rows:
//   y[c * ldy + r] = sum_{i < k_len} x[c * ldx + i] * w[r * ldw + i]   (r < rows, c < cols)
// Store writes the sums (+ bias[r] if bias is non-null); Accumulate adds them to y (later
// k-chunks). x points at fp32 or, for sets with x_bf16, at bf16 rows; w at the weight dtype.
using TileFn = void (*)(const void* x, int64_t ldx, const void* w, int64_t ldw, int64_t k_len, float* y,
                        int64_t ldy, const float* bias, TileOutput out);

constexpr int kMaxTileRows = 8;
constexpr int kMaxTileCols = 4;

// How the tiles want the activation rows laid out.
enum class XForm : uint8_t {
  F32,   // as given (fp32 rows)
  Bf16,  // rounded to bf16 rows (round_rows_to_bf16_avx512)
  // fp32, each block of 32 split into its 16 even then its 16 odd elements, zero-padded to a
  // multiple of 32 (split_even_odd_avx512). One 64-byte load of 32 bf16 weights then widens to
  // fp32 with a shift (even elements) and a mask (odd elements): no shuffles on the weight stream.
  F32EvenOdd,
};

// Products of m activation rows run in one of three regimes. Up to kDecodeOrderRows rows
// (ops/backend.h) every row is summed in the order of the one-row tile, whole k at once, so a
// row's result does not depend on the rows beside it; beyond that the tiles and k-chunks are
// free to reorder the sums.
struct KernelSet {
  XForm x_form;         // activations of prefill tiles (m > kDecodeOrderRows)
  XForm decode_x_form;  // activations of decode-order tiles (m <= kDecodeOrderRows)
  int rows;             // weight rows of the main tile when m > kDecodeOrderRows
  int cols;             // activation rows of the main tile
  int decode_rows;      // weight rows of the tile when m == 1 (memory-bound: more rows in flight)
  int few_rows;         // weight rows of the main decode-order tile when 1 < m <= kDecodeOrderRows
  int few_cols;         // its activation rows
  // tile[r - 1][c - 1] handles r weight rows by c activation rows; null where never needed.
  TileFn tile[kMaxTileRows][kMaxTileCols];
  // decode_tile[r - 1]: r weight rows by the single activation row, in decode_x_form.
  TileFn decode_tile[kMaxTileRows];
  // few_tile[r - 1][c - 1]: r weight rows by c activation rows in decode_x_form, each row's sums
  // exactly decode_tile's. The same functions as `tile` where those already sum in that order.
  TileFn few_tile[kMaxTileRows][kMaxTileCols];
};

// Null when the ISA file has no kernels for this weight dtype. bf16_dot: BF16 weights use
// AVX512-BF16 dot products on bf16-rounded activations instead of widening to fp32.
const KernelSet* avx512_kernels(DType wtype, bool bf16_dot);
const KernelSet* avx2_kernels(DType wtype);

// Outer-product tiles for many activation rows with bf16 dot products (matmul_packed_avx512.cc).
// A panel of up to 16 * vectors weight rows over k_len elements is first packed into pairs:
//   out[p * 16 * vectors + j] = (w[j * ldw + 2p], w[j * ldw + 2p + 1]) as one 32-bit lane,
// zero where j >= n_cols or 2p + 1 >= k_len, p < ceil(k_len / 2).
using PackFn = void (*)(const void* w, int64_t ldw, int64_t n_cols, int64_t k_len, int vectors, void* out);
// A tile of rows activation rows (bf16, ldx apart, zero-padded past k_len to an even length) by
// `vectors` packed vectors: y[r * ldy + j] = sum_i x[r * ldx + i] * w[j][i] for j < n_cols, with
// Store / Accumulate and bias as TileFn.
using PackedTileFn = void (*)(const void* x, int64_t ldx, const void* panel, int64_t k_len, float* y,
                              int64_t ldy, int64_t n_cols, const float* bias, TileOutput out);

constexpr int kMaxPackedRows = 8;
constexpr int kMaxPackedVectors = 3;

struct PackedKernels {
  int rows;     // activation rows of the main tile
  int vectors;  // 16-feature vectors of the main tile (a panel's width)
  PackFn pack;
  PackedTileFn tile[kMaxPackedRows][kMaxPackedVectors];  // [rows - 1][vectors - 1]
};

// For BF16 weights with bf16 dot products, on CPUs with AVX512_BF16.
const PackedKernels* avx512_packed_bf16_kernels();

// Rounds each fp32 row of length k to bf16 (round to nearest even) into rows of ld >= k
// elements, zero-filling the padding so that padded rows stay harmless to read.
void round_rows_to_bf16_avx512(const float* x, int64_t rows, int64_t k, uint16_t* out, int64_t ld);

// One fp32 row of length k into XForm::F32EvenOdd: round_up(k, 32) floats at out.
void split_even_odd_avx512(const float* x, int64_t k, float* out);

}  // namespace brisk::cpu::kernels
