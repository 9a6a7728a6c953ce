#pragma once

#include <cstdint>

#include "core/thread_pool.h"
#include "ops/backend.h"

namespace brisk::cpu {

// Causal grouped-query attention of a batch of sequences over a paged KV cache of any KvDtype;
// semantics of ref::attention. Work is split over (sequence, row block, kv head) units,
// interleaved so that causal rows balance across threads. Non-fp32 rows are converted to fp32 as
// they are loaded (once per block of queries), with their scale folded in.
void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch, int64_t n_heads,
               float scale, ThreadPool& pool);

}  // namespace brisk::cpu
