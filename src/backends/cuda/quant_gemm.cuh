// The pieces around cuBLASLt's low-precision tensor-core GEMMs for quantized weights at m > 8
// (MatmulEngine::lt_quant_gemm runs the GEMM itself):
//   Q8A8 (w8a8): x -> int8 codes per token, int8 x int8 -> int32 (exact), then y = acc * sx * sw.
//   F8:          x -> e4m3 codes per token (scale absmax / 448), e4m3 x e4m3 -> fp32, then the same.
// The weights' codes are used as uploaded (quant_layout.h): rows of code_row_bytes >= k bytes whose
// padding holds code 0 (level 0 in both formats), so a depth rounded up to 16 reads only zeros past k.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace brisk::cuda {

enum class ActivationCode : uint8_t { Int8, E4m3 };

// The GEMM's depth for a given k: k rounded up to 16, the multiple cuBLASLt's int8 (4) and fp8
// (16) kernels need. Codes of x past k are written as zero.
inline int64_t quant_gemm_depth(int64_t k) { return (k + 15) / 16 * 16; }

// Per token i: absmax_i = max |x[i, :]|, scale[i] = absmax_i / L (L = 127 or 448), and
// codes[i, j] = code(x[i, j] * (L / absmax_i)) for j < k, zero for k <= j < depth. Int8 rounds half
// to even like quantize_activation_row_u8 (core/quant_blocks.h); E4m3 rounds to nearest even with
// saturation like f32_to_e4m3 (core/dtype.h). An all-zero row gets scale 0 and zero codes.
// codes: [m, depth] bytes, depth a multiple of 16, 16-byte aligned.
void quantize_activations(const float* x, int64_t m, int64_t k, int64_t depth, ActivationCode code,
                          uint8_t* codes, float* scales, cudaStream_t stream);

// y[i, j] = (float(acc[i, j]) * x_scales[i]) * w_scales[j] (+ bias[j]), rounded at each step (no
// fused multiply-add), so a host reference can reproduce it bit for bit. acc may be y itself (the
// GEMM writes its accumulators into y's memory when y is aligned: int32 and fp32 are both 4 bytes).
void scale_gemm_output(const int32_t* acc, int64_t m, int64_t n, const float* x_scales, const float* w_scales,
                       const float* bias, float* y, cudaStream_t stream);
void scale_gemm_output(const float* acc, int64_t m, int64_t n, const float* x_scales, const float* w_scales,
                       const float* bias, float* y, cudaStream_t stream);

}  // namespace brisk::cuda
