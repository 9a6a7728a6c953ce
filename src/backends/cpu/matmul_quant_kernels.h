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
// values (core/quant_blocks.h), stored in the order the weight format unpacks its codes, so a
// 64-byte vector of weight codes meets the matching 64 activation codes without shuffles.
constexpr int64_t kGroupValues = 64;  // values per vector (one vpdpbusd)

// Activation rows for the integer tiles, pointers at the tile's first row; every row is `ld`
// codes apart (the weight row's blocks times the block size).
struct Int8Rows {
  const int8_t* codes;        // [rows, ld] int8 codes in the kernel's order
  const float* lane_scales;   // [rows, ld / 4] scale of each int32 lane (4 codes) of a vector
  const float* block_sums;    // [rows, ld / block] sum of each weight block's dequantized activations
  const float* row_sums;      // [rows] sum of the row's dequantized activations
  int64_t ld;
};

using Int8TileFn = void (*)(const Int8Rows& x, const void* w, size_t ldw, int64_t n_blocks, float* y, int64_t ldy,
                            const float* bias);

struct Int8KernelSet {
  Int8TileFn tile[kTileRows][kTileCols];  // tile[R - 1][C - 1]
  // position_value[p]: which value of a 64-value group sits at byte p of a vector (the unpack
  // order of the weight codes).
  uint8_t position_value[kGroupValues];
};

// Null for formats without integer tiles (F8, Q8A8, which has its own).
const Int8KernelSet* avx512_vnni_int8_kernels(DType wtype);

}  // namespace brisk::cpu::quant_kernels
