#pragma once

#include <cstdint>

#include "backends/cpu/matmul.h"
#include "core/thread_pool.h"
#include "ops/backend.h"

namespace brisk::cpu {

// Causal grouped-query attention of a batch of sequences over a paged KV cache of any KvDtype;
// semantics of ref::attention. Work is split over (sequence, row block, kv head) units,
// interleaved so that causal rows balance across threads. Non-fp32 rows are converted to fp32 as
// they are loaded (once per block of queries), with their scale folded in.
// Bf16Math::Dot (--bf16-fast) runs prefill units (more than 8 query vectors) on bf16 dot products
// where the CPU has them (attention_bf16.h); decode rows and Bf16Math::Exact stay fp32.
void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch, int64_t n_heads,
               const AttentionParams& params, Bf16Math math, ThreadPool& pool);

}  // namespace brisk::cpu
