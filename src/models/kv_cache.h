// Keys and values of every layer in fixed-size blocks (a paged cache): per layer one pool
// [n_blocks * block_size, n_kv_heads, head_dim] fp32 in the backend's memory. Which blocks a
// sequence owns is its block table (runtime/kv_blocks.h hands them out); a one-sequence user
// (perplexity, tests) simply owns blocks 0.. in order, which is a contiguous cache.
#pragma once

#include <string>
#include <vector>

#include "ops/backend.h"

namespace brisk {

class KvCache {
 public:
  // 16 positions per block: small enough that a short sequence wastes little, large enough that a
  // block of keys fills one 16-lane vector step of the CPU attention kernel.
  static constexpr int64_t kBlockSize = 16;

  KvCache(Backend& backend, int64_t n_layers, int64_t n_blocks, int64_t n_kv_heads, int64_t head_dim)
      : n_blocks_(n_blocks), row_(n_kv_heads * head_dim) {
    for (int64_t l = 0; l < n_layers; ++l) {
      k_.push_back(backend.allocate(size_t(capacity() * row_)));
      v_.push_back(backend.allocate(size_t(capacity() * row_)));
    }
  }

  // The same, with running out of backend memory as an error value (the cache is the one large
  // buffer whose size the user picks: --kv-mem, --ctx).
  static Result<KvCache> create(Backend& backend, int64_t n_layers, int64_t n_blocks, int64_t n_kv_heads,
                                int64_t head_dim) {
    KvCache cache(n_blocks, n_kv_heads * head_dim);
    for (int64_t l = 0; l < n_layers; ++l)
      for (auto* pool : {&cache.k_, &cache.v_}) {
        auto buffer = backend.try_allocate(size_t(cache.capacity() * cache.row_));
        if (!buffer.ok())
          return make_error("KV cache of " + std::to_string(cache.capacity()) + " positions (" +
                            std::to_string(bytes_per_block(n_layers, n_kv_heads, head_dim) * size_t(n_blocks) >> 20) +
                            " MiB): " + buffer.error().message + "; lower --kv-mem or --ctx");
        pool->push_back(std::move(buffer).value());
      }
    return cache;
  }

  static int64_t blocks_for(int64_t positions) { return (positions + kBlockSize - 1) / kBlockSize; }
  static size_t bytes_per_block(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim) {
    return size_t(2 * n_layers * kBlockSize * n_kv_heads * head_dim) * sizeof(float);
  }

  int64_t n_blocks() const { return n_blocks_; }
  int64_t capacity() const { return n_blocks_ * kBlockSize; }  // token slots in all
  float* k(int64_t layer) { return k_[size_t(layer)].data(); }
  float* v(int64_t layer) { return v_[size_t(layer)].data(); }
  size_t bytes() const { return 2 * k_.size() * size_t(capacity() * row_) * sizeof(float); }

 private:
  KvCache(int64_t n_blocks, int64_t row) : n_blocks_(n_blocks), row_(row) {}

  int64_t n_blocks_;
  int64_t row_;  // floats per position per layer
  std::vector<Buffer> k_, v_;
};

}  // namespace brisk
