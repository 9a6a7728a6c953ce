// Writes new key and value rows into their slots of the paged cache (see ref::store_kv),
// converting them to the cache's KvDtype; int8/fp8 rows get one absmax scale per kv head.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/backend.h"

namespace brisk::cuda {

// slots in device memory; rows of kv.row() floats, src_stride floats apart in k and v.
void store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride, const int32_t* slots,
              const KvPools& kv, cudaStream_t stream);

}  // namespace brisk::cuda
