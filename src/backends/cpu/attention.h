#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace brisk::cpu {

// Causal grouped-query attention over an fp32 KV cache; semantics of ref::attention.
// Work is split over (query row, head) pairs, interleaved so causal rows balance across threads.
void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t rows,
               int64_t first_pos, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
               ThreadPool& pool);

}  // namespace brisk::cpu
