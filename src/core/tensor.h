// A non-owning view of a contiguous row-major tensor. Weights point into memory-mapped files;
// activations point into buffers the model preallocates.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace brisk {

enum class Device : uint8_t { CPU, CUDA };

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  Device device = Device::CPU;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  // Block dtypes pad each row to whole blocks (see core/dtype.h).
  size_t nbytes() const {
    if (shape.empty()) return dtype_size(dtype);
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
