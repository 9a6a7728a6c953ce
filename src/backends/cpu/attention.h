#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "ops/backend.h"

namespace brisk::cpu {

// Causal grouped-query attention of a batch of sequences over a paged fp32 KV cache; semantics
// of ref::attention. Work is split over (sequence, row block, kv head) units, interleaved so that
// causal rows balance across threads.
void attention(const float* q, const float* k_pool, const float* v_pool, float* out,
               const AttentionBatch& batch, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
               float scale, ThreadPool& pool);

}  // namespace brisk::cpu
