// The contract between the quantized matmul driver (matmul_quant.cc: activation preparation,
// threads, cache blocking) and the per-ISA tiles (matmul_quant_avx512.cc).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace brisk::cpu::quant_kernels {

// One register tile: R weight rows (blocks of the weight dtype, ldw bytes apart) against C
// activation rows (ldx elements apart), over n_blocks whole blocks of k:
//   y[c * ldy + r] = sum_k x[c][k] * w[r][k] (+ bias[r])
// x: fp32 rows zero-padded to whole blocks, or for Q8A8 u8 rows (code + 128, padded with 128)
// with one scale per row in x_scales.
using QuantTileFn = void (*)(const void* x, int64_t ldx, const float* x_scales, const void* w, size_t ldw,
                             int64_t n_blocks, float* y, int64_t ldy, const float* bias);

constexpr int kTileRows = 4;  // weight rows per tile
constexpr int kTileCols = 4;  // activation rows per tile

struct QuantKernelSet {
  QuantTileFn tile[kTileRows][kTileCols];  // tile[R - 1][C - 1]
};

// Null when this ISA has no tiles for the dtype (or the CPU lacks the ISA: the caller checks).
const QuantKernelSet* avx512_quant_kernels(DType wtype);

// Integer tiles for weight-only formats: activation rows quantized to int8 per kActivationBlock
// values (core/quant_blocks.h), stored in the order the weight format unpacks its codes, so each
// 64-byte vector of weight codes meets the matching 64 activation codes without shuffles. A
// group is the values one unpack step covers: 64 (Q8: one vector) or 128 (4-bit: a BlockQ4's
// low and high nibbles, two vectors whose int32 lanes hold the same activation blocks).
constexpr int64_t kGroupValues = 64;      // values per vector (one vpdpbusd)
constexpr int64_t kMaxGroupValues = 128;
constexpr int64_t kLanesPerGroup = 16;    // int32 lanes of a vector: one scale and sum each per group

// Activation rows for the integer tiles, pointers at the tile's first row; every row is `ld`
// codes apart (the weight row's blocks times the block size) and ld / group * kLanesPerGroup
// lane entries apart.
struct Int8Rows {
  const int8_t* codes;        // [rows, ld] int8 codes in the kernel's order
  const float* lane_scales;   // [rows, lanes] activation scale of each int32 lane of a group (times
                              // the format's scale unit)
  const int32_t* lane_sums;   // [rows, lanes] 4-bit: -(sum of the lane's codes over the group) << 16,
                              // so vpmaddwd with (zero << 16) gives -zero * sum in one instruction
  const float* row_sums;      // [rows] sum of the row's dequantized activations
  int64_t ld;
};

// w: the tile's first row; its rows are ldw bytes apart and each row's blocks block_stride bytes
// apart (row-major: ldw = the row's bytes, block_stride = one block; BlockOrder::Interleaved8:
// ldw = one block, block_stride = 8 blocks; BlockOrder::SparseRows: w = the tile's group of 8
// rows, ldw = the tile's first row in it, block_stride unused -- backends/cpu/sparse_q8.h).
using Int8TileFn = void (*)(const Int8Rows& x, const void* w, size_t ldw, size_t block_stride, int64_t n_blocks,
                            float* y, int64_t ldy, const float* bias);

// One activation row of k values (zero-padded to padded_k) into the tiles' form: codes (the
// numerics of quantize_activation_blocks) in the set's order, lane scales, lane sums, row sum.
using Int8PrepareRowFn = void (*)(const float* x, int64_t k, int64_t padded_k, int8_t* codes, float* lane_scales,
                                  int32_t* lane_sums, float* row_sum);

constexpr int kDecodeRows = 8;  // weight rows of the one-activation-row (decode) tile

struct Int8KernelSet {
  Int8TileFn tile[kTileRows][kTileCols];  // tile[R - 1][C - 1]
  Int8TileFn decode_tile = nullptr;       // kDecodeRows x 1, for m = 1
  int64_t group = kGroupValues;            // kGroupValues or kMaxGroupValues
  Int8PrepareRowFn prepare_row = nullptr;
};

// Null for formats without integer tiles (F8, Q8A8, which has its own).
const Int8KernelSet* avx512_vnni_int8_kernels(DType wtype);

}  // namespace brisk::cpu::quant_kernels
