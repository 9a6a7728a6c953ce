// Per-thread working memory for kernels that repack operands (matmul's rounded activations and
// weight panels, train_gemm's weight/activation panels), grown only when a call needs more, so
// steady-state inference and training allocate nothing. 64-byte aligned: rows start on a cache
// line and aligned vector loads are allowed.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace brisk::cpu {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(data_); }

  void* get(size_t bytes) {
    if (bytes > capacity_) {
      std::free(data_);
      capacity_ = (bytes + 63) / 64 * 64;
      data_ = std::aligned_alloc(64, capacity_);
      BRISK_CHECK(data_ != nullptr, "cpu scratch: cannot allocate " + std::to_string(capacity_) + " bytes");
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace brisk::cpu
