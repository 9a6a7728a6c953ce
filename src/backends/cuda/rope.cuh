// Rotary embedding, "rotate half" layout (see ref::rope), in place on the queries [rows, n_heads,
// head_dim] and keys [rows, n_kv_heads, head_dim] of a batch, in one launch.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/backend.h"

namespace brisk::cuda {

// Row r at position positions[r]; positions and cos_table/sin_table ([n_positions,
// head_dim/2]) in device memory.
// k may be null (then only q rotates).
void rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
          const int32_t* positions, const float* cos_table, const float* sin_table,
          cudaStream_t stream);

// Backend::rope_store_kv in one launch for F32/BF16 pools; false (nothing enqueued) for pools
// with a scale per head row (I8/F8), which need the two calls.
bool rope_store_kv(float* q, float* k, const float* v, int64_t rows, int64_t n_heads,
                   const int32_t* positions, const float* cos_table, const float* sin_table,
                   const int32_t* slots, const KvPools& kv, cudaStream_t stream);

}  // namespace brisk::cuda
