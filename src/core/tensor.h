// A non-owning view of a contiguous row-major tensor (block dtypes: see BlockOrder). Weights
// point into memory-mapped files; activations point into buffers the model preallocates.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace brisk {

enum class Device : uint8_t { CPU, CUDA };

// Where the blocks of a block-dtype matrix lie. RowMajor: row after row. Interleaved8: rows in
// groups of 8, and within a group block b of its 8 rows side by side before block b + 1, so an
// 8-row decode tile reads one sequential stream (short rows read as 8 streams ran at a third of
// the speed: bench/notes-cpu-matmul.md item 24). Only the CPU backend's upload makes it, and only
// its integer tiles read it (backends/cpu/matmul_quant.h).
// Bf16Pairs (BF16 [n, k] matrices, n a multiple of 16, k even): panels of 48 rows (the last one
// 16 or 32), each panel k / 2 rows of 32-bit words, word j of row i = elements 2i and 2i + 1 of
// the panel's row j. The CPU backend's upload makes it under --bf16-fast, for its outer-product
// tiles (backends/cpu/matmul.h).
// SparseRows (Q8 matrices with many exact zeros): the CPU backend's bitmask layout of
// backends/cpu/sparse_q8.h -- per row a mask per 64 inputs and only the non-zero codes. Its data
// starts with a 64-byte header whose first uint64 is the layout's size in bytes (what nbytes()
// returns, not the dense size).
enum class BlockOrder : uint8_t { RowMajor, Interleaved8, Bf16Pairs, SparseRows };
constexpr size_t kSparseRowsHeaderBytes = 64;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Device device = Device::CPU;
  BlockOrder block_order = BlockOrder::RowMajor;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  // Block dtypes pad each row to whole blocks (see core/dtype.h).
  size_t nbytes() const {
    if (shape.empty()) return dtype_size(dtype);
    if (block_order == BlockOrder::SparseRows) {
      uint64_t total = 0;
      std::memcpy(&total, data, sizeof(total));
      return size_t(total);
    }
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
    return size_t(rows) * row_bytes(dtype, shape.back());
  }
  int rank() const { return int(shape.size()); }
  int64_t dim(int i) const { return shape[size_t(i < 0 ? int(shape.size()) + i : i)]; }
  bool empty() const { return data == nullptr; }

  template <class T>
  T* as() const { return static_cast<T*>(data); }
};

std::string shape_string(const std::vector<int64_t>& shape);  // "[384, 1024]"

}  // namespace brisk
