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

}  // namespace brisk::cpu::quant_kernels
