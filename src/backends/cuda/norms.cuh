// Row normalizations: one block per row, sums in double (rows are short; this keeps the GPU within
// rounding of the scalar reference, which also sums in double).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace brisk::cuda {

void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps, float* y,
              cudaStream_t stream);
// x += h, then y = rms_norm(x), in one pass per row (y may alias h).
void add_rms_norm(float* x, const float* h, const float* weight, int64_t rows, int64_t d, float eps,
                  float* y, cudaStream_t stream);
void layer_norm(const float* x, const float* weight, const float* bias, int64_t rows, int64_t d,
                float eps, float* y, cudaStream_t stream);

}  // namespace brisk::cuda
