// Causal prefill attention on tensor cores (flash-attention-2 style), for batches that bring many
// query rows per sequence; decode batches keep the fp32 kernel of attention.cuh, which also serves
// every shape this one does not take.
//
// A block owns 128 query vectors of one KV head (rows x group-heads, ordered as in attention.cuh,
// so GQA heads share each K/V tile) and walks 64-key tiles of the paged cache up to its last row's
// causal limit. Q, K and V are rounded to bf16 in shared memory; S = Q K^T and O += P V run on
// mma.sync m16n8k16 (bf16 in, fp32 accumulate); each of the 8 warps keeps an online softmax for
// its 16 query vectors in fp32 registers, so no [T, T] matrix exists anywhere. The global loads of
// the next K (V) tile are issued before the P V (Q K^T) products of the current one and stored to
// shared memory after them, so one block overlaps its own loads with its math.
#pragma once

#include <cuda_runtime.h>

#include "backends/cuda/attention.cuh"

namespace brisk::cuda {

// Whether prefill_attention takes a batch of this shape (head_dim 64 or 128, and at least half a
// query tile per KV head in the longest sequence, power-of-two cache blocks).
bool prefill_attention_fits(const AttentionBatch& batch, const AttentionShape& shape);
// Its float4 loads of q and of the pools (and float2 stores of out) need 16-byte alignment.
inline bool prefill_attention_aligned(const float* q, const float* k_pool, const float* v_pool,
                                      const float* out) {
  return alignment_of(q) >= 16 && alignment_of(k_pool) >= 16 && alignment_of(v_pool) >= 16 &&
         alignment_of(out) >= 16;
}

// Same contract as attention() (q/out fp32 [rows, n_heads, head_dim], fp32 pools read through the
// block tables), with bf16 rounding of Q, K, V and P: relative error ~2e-3 instead of ~1e-6.
void prefill_attention(const float* q, const float* k_pool, const float* v_pool, float* out,
                       const AttentionBatch& batch, const AttentionShape& shape, cudaStream_t stream);

}  // namespace brisk::cuda
