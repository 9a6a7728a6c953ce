// Causal attention with grouped KV heads over a paged cache of any KvDtype (see ref::attention),
// in fp32: bf16/int8/fp8 keys and values are converted (times their row's scale) as the tiles
// are loaded into shared memory, so only the global-memory reads narrow.
//
// Batches with many query rows per sequence (prefill) go to the bf16 tensor-core kernel of
// attention_prefill.cuh when their shape fits it; this fp32 kernel serves the rest (decode, odd
// head dims) and is the exact path. A block takes a tile of query vectors that share a KV head
// (rows x group-heads; 16 of them, or 4 when a decode row brings no more), walks 32-key tiles of
// the cache through shared memory with an online softmax (no [T, T] score matrix), and keeps its
// outputs in registers. When there are too few query tiles to fill the GPU (decode: one row), the
// keys are split over several blocks ("flash-decoding"); each writes an unnormalized partial
// output with its running max and sum, and the last block of a tile to finish merges them (an
// arrival counter per tile; no second kernel).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/cuda_common.cuh"
#include "ops/backend.h"

namespace brisk::cuda {

struct AttentionShape {
  int64_t n_heads, n_kv_heads, head_dim;  // n_kv_heads and head_dim as in the KvPools
  float scale;
  float softcap = 0.0f;  // AttentionParams: > 0 soft-caps scores
  int64_t window = 0;    // AttentionParams: > 0 limits a query to its last `window` keys
  AttentionMask mask = AttentionMask::Causal;
};

// Largest head_dim supported (kernels are instantiated for 32, 64, 128 and 256, padding up).
constexpr int64_t kMaxHeadDim = 256;

// Every sequence of the batch over its paged cache (see AttentionBatch): the grid's z dimension
// is the sequence, and a key position goes through the sequence's block table to its cache slot.
// split_scratch holds the partial outputs of a split run, split_arrivals (a zeroed Scratch) its
// counters; sm_count sizes the split.
void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch,
               const AttentionShape& shape, int sm_count, Scratch& split_scratch,
               Scratch& split_arrivals, cudaStream_t stream);

}  // namespace brisk::cuda
