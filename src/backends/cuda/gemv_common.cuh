// Pieces shared by the GEMVs (matmul.cu for F32/F16/BF16 weights, quant_gemv.cu for block
// dtypes): the persistent grid's block shape and shared-memory budget, and the streaming load.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace brisk::cuda {

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kGemvXFloats = 8192;    // x chunk, all M rows: 32 KB
constexpr int kGemvAccFloats = 4096;  // partial sums [rows of the block][M]: 16 KB
constexpr size_t kGemvSmemBytes = size_t(kGemvXFloats + kGemvAccFloats) * sizeof(float);

// Weights are read exactly once per call: skip L1, and let L2 fetch whole 256-byte sectors.
__device__ __forceinline__ uint4 load_streaming(const void* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

}  // namespace brisk::cuda
