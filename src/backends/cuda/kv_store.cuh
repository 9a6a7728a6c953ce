// Writes new key and value rows into their slots of the paged cache (see ref::store_kv).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace brisk::cuda {

// slots in device memory; rows of `width` floats, src_stride floats apart in k and v.
void store_kv(const float* k, const float* v, int64_t rows, int64_t width, int64_t src_stride,
              const int32_t* slots, float* k_pool, float* v_pool, cudaStream_t stream);

}  // namespace brisk::cuda
