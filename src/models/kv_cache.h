// Keys and values of every layer in fixed-size blocks (a paged cache): per layer one pool
// [n_blocks * block_size, n_kv_heads, head_dim] of the cache's KvDtype in the backend's memory,
// plus, for I8/F8, one fp32 scale per (slot, kv head) in a side pool [n_blocks * block_size,
// n_kv_heads]. Which blocks a sequence owns is its block table (runtime/kv_blocks.h hands them
// out); a one-sequence user (perplexity, tests) simply owns blocks 0.. in order, which is a
// contiguous cache.
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

  KvCache(Backend& backend, int64_t n_layers, int64_t n_blocks, int64_t n_kv_heads, int64_t head_dim,
          KvDtype dtype = KvDtype::F32)
      : KvCache(n_blocks, n_kv_heads, head_dim, dtype) {
    for (int64_t l = 0; l < n_layers; ++l)
      for (auto* pool : pools())
        pool->push_back(backend.allocate(floats_of(*pool)));
  }

  // The same, with running out of backend memory as an error value (the cache is the one large
  // buffer whose size the user picks: --kv-mem, --ctx).
  static Result<KvCache> create(Backend& backend, int64_t n_layers, int64_t n_blocks, int64_t n_kv_heads,
                                int64_t head_dim, KvDtype dtype = KvDtype::F32) {
    KvCache cache(n_blocks, n_kv_heads, head_dim, dtype);
    for (int64_t l = 0; l < n_layers; ++l)
      for (auto* pool : cache.pools()) {
        auto buffer = backend.try_allocate(cache.floats_of(*pool));
        if (!buffer.ok())
          return make_error("KV cache of " + std::to_string(cache.capacity()) + " positions (" +
                            std::string(kv_dtype_name(dtype)) + ", " +
                            std::to_string(bytes_per_block(n_layers, n_kv_heads, head_dim, dtype) *
                                               size_t(n_blocks) >> 20) +
                            " MiB): " + buffer.error().message + "; lower --kv-mem or --ctx");
        pool->push_back(std::move(buffer).value());
      }
    return cache;
  }

  static int64_t blocks_for(int64_t positions) { return (positions + kBlockSize - 1) / kBlockSize; }
  // Keys, values and their scales of one block in all layers.
  static size_t bytes_per_block(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, KvDtype dtype) {
    const size_t per_head_row = size_t(head_dim) * kv_element_bytes(dtype) + (kv_has_scales(dtype) ? sizeof(float) : 0);
    return size_t(2 * n_layers * kBlockSize * n_kv_heads) * per_head_row;
  }

  int64_t n_blocks() const { return n_blocks_; }
  int64_t capacity() const { return n_blocks_ * kBlockSize; }  // token slots in all
  KvDtype dtype() const { return dtype_; }
  // Layer `layer`'s pools, as store_kv and attention take them.
  KvPools layer(int64_t layer) const {
    const size_t l = size_t(layer);
    KvPools p;
    p.dtype = dtype_;
    p.k = k_[l].data();
    p.v = v_[l].data();
    if (kv_has_scales(dtype_)) {
      p.k_scales = k_scales_[l].data();
      p.v_scales = v_scales_[l].data();
    }
    p.n_kv_heads = n_kv_heads_;
    p.head_dim = head_dim_;
    return p;
  }
  size_t bytes() const { return size_t(n_blocks_) * bytes_per_block(int64_t(k_.size()), n_kv_heads_, head_dim_, dtype_); }

 private:
  KvCache(int64_t n_blocks, int64_t n_kv_heads, int64_t head_dim, KvDtype dtype)
      : n_blocks_(n_blocks), n_kv_heads_(n_kv_heads), head_dim_(head_dim), dtype_(dtype) {}

  // The per-layer pool lists this dtype allocates.
  std::vector<std::vector<Buffer>*> pools() {
    if (kv_has_scales(dtype_)) return {&k_, &v_, &k_scales_, &v_scales_};
    return {&k_, &v_};
  }
  // Buffers count floats: a pool of narrower elements takes the floats that hold its bytes.
  size_t floats_of(const std::vector<Buffer>& pool) const {
    const int64_t head_rows = capacity() * n_kv_heads_;
    if (&pool == &k_scales_ || &pool == &v_scales_) return size_t(head_rows);
    const size_t bytes = size_t(head_rows * head_dim_) * kv_element_bytes(dtype_);
    return (bytes + sizeof(float) - 1) / sizeof(float);
  }

  int64_t n_blocks_;
  int64_t n_kv_heads_, head_dim_;
  KvDtype dtype_;
  std::vector<Buffer> k_, v_;               // [layer] -> [slots, n_kv_heads, head_dim] of dtype_
  std::vector<Buffer> k_scales_, v_scales_;  // [layer] -> [slots, n_kv_heads] fp32; I8/F8 only
};

}  // namespace brisk
