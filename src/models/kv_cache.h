// Keys and values of one sequence for every layer, fp32, [capacity, n_kv_heads, head_dim] per
// layer, in the backend's memory. Allocated once for the largest context the run needs.
#pragma once

#include <vector>

#include "ops/backend.h"

namespace brisk {

class KvCache {
 public:
  KvCache(Backend& backend, int64_t n_layers, int64_t capacity, int64_t n_kv_heads, int64_t head_dim)
      : capacity_(capacity), row_(n_kv_heads * head_dim) {
    for (int64_t l = 0; l < n_layers; ++l) {
      k_.push_back(backend.allocate(size_t(capacity * row_)));
      v_.push_back(backend.allocate(size_t(capacity * row_)));
    }
  }

  int64_t capacity() const { return capacity_; }
  float* k(int64_t layer, int64_t pos = 0) { return k_[size_t(layer)].data() + pos * row_; }
  float* v(int64_t layer, int64_t pos = 0) { return v_[size_t(layer)].data() + pos * row_; }
  size_t bytes() const { return 2 * k_.size() * size_t(capacity_ * row_) * sizeof(float); }

 private:
  int64_t capacity_;
  int64_t row_;
  std::vector<Buffer> k_, v_;
};

}  // namespace brisk
