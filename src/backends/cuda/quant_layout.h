// How a quantized matrix (a block dtype of core/quant_blocks.h) lies in device memory. The host
// blocks interleave a scale header with the codes (BlockQ8 is 260 bytes, BlockQ4 68), so no
// 16-byte load of codes is aligned; upload repacks them once into two arrays:
//   codes  [n, code_row_bytes]  the row's codes, padded to whole blocks with the "level 0" code
//                               (8-bit: one byte per value; 4-bit: BlockQ4's nibble order kept,
//                               so each 16 bytes hold 32 consecutive values: byte j of a 16-byte
//                               chunk holds value j in its low nibble and value 16 + j in its high)
//   params [n, groups]          8-bit (Q8, Q8A8, F8): the row's fp32 scale (groups = 1);
//                               4-bit (Q4, NF4, LOG4): per 128 values one 32-bit word, fp16 scale
//                               in the low half and fp16 (1024 + zero point) in the high half --
//                               what the GEMV subtracts from a code widened as 1024 + code.
// Rows of codes are multiples of 64 bytes and params start right after them, so every row and
// the params array are 16-byte aligned. The device bytes never exceed the host tensor's nbytes().
// The Tensor keeps its logical shape and dtype; only the backend's kernels read these bytes.
// Plain C++ (no CUDA) so the repack is testable on any machine.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor.h"

namespace brisk::cuda {

struct QuantDeviceLayout {
  int bits = 8;                // code width: 8 or 4
  int64_t padded_k = 0;        // k rounded up to the format's block (256 or 128 values)
  int64_t code_row_bytes = 0;  // padded_k (8-bit) or padded_k / 2 (4-bit)
  int64_t groups = 1;          // params per row
  size_t params_offset = 0;    // n * code_row_bytes
  size_t bytes = 0;            // codes + params
};

constexpr int64_t kQ4GroupValues = 128;  // values per 4-bit params word (BlockQ4's block)

// The two arrays of an uploaded matrix, as the kernels take them.
struct QuantDeviceView {
  const uint8_t* codes;    // [n, code_row_bytes]
  const uint32_t* params;  // [n, groups]: fp32 row scales (8-bit) or group words (4-bit)
  int64_t code_row_bytes;
  int groups;
  int padded_k;
  int64_t n;
};

// w: an uploaded (repacked) [n, k] block-dtype matrix.
QuantDeviceView quant_device_view(const Tensor& w);

// dtype must be a block dtype.
QuantDeviceLayout quant_device_layout(DType dtype, int64_t n, int64_t k);

// Writes the device layout of `host` (a [n, k] block-dtype matrix in host memory) into `out`
// (layout.bytes).
void repack_for_device(const Tensor& host, uint8_t* out);

// Value (row, col) of a repacked matrix as the kernels compute it, (level - zero) * scale: the
// tests' check that the repack loses nothing.
float repacked_value(DType dtype, const uint8_t* packed, int64_t n, int64_t k, int64_t row, int64_t col);

}  // namespace brisk::cuda
