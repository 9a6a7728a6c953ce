// Element-wise ops and data movement: activations, residual adds, embedding gathers, strided
// copies, and the fp32 -> bf16/f16 rounding that feeds cuBLASLt. All enqueue on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/tensor.h"

namespace brisk::cuda {

// Round to nearest even (as PyTorch's .to(bfloat16) / .half()).
void convert_f32_to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream);
void convert_f32_to_f16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream);

void silu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);
void gelu_tanh(float* x, int64_t n, cudaStream_t stream);
void add(float* x, const float* y, int64_t n, cudaStream_t stream);
void mul(float* x, const float* y, int64_t n, cudaStream_t stream);
void scale(float* x, int64_t n, float s, cudaStream_t stream);
void soft_cap(float* x, int64_t n, float cap, cudaStream_t stream);
void gelu_erf(float* x, int64_t n, cudaStream_t stream);

// out[r] (+)= table[ids[r]]; ids and table [rows, d] (F32/F16/BF16) in device memory. An id out
// of range gives a row of NaN (callers check ids on the host before they upload them).
void gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                 bool accumulate, cudaStream_t stream);

void copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, int64_t rows,
             int64_t cols, cudaStream_t stream);

}  // namespace brisk::cuda
