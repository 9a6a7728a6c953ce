#pragma once
// 16-lane fp32 math as GCC vectors, for kernels compiled as target clones: one zmm per v16 in the
// AVX-512 clone, two ymm in the AVX2 one, scalar code in the default one. Helpers are
// always_inline and never return a v16 by value (a 64-byte vector return would change the ABI of
// the non-AVX-512 clones).
#include <cstdint>

namespace brisk::cpu {

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;

// x = e^x for x <= 0 (NaN stays NaN): x = n ln2 + r with |r| <= ln2/2, e^r by the Cephes expf
// polynomial (relative error ~1e-7), 2^n added to the exponent bits. x is clamped at -86, where
// e^x (~4e-38) is still a normal float, and no sum of a softmax or a SiLU denominator notices it.
__attribute__((always_inline)) inline void exp_nonpositive(v16& x) {
  const v16 floor_x = v16{} - 86.0f;
  x = x < floor_x ? floor_x : x;
  const float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const v16 t = x * 1.44269504088896341f + kRound;
  const v16 n = t - kRound;
  const v16 r = x - n * 0.693359375f + n * 2.12194440e-4f;  // ln2 split in two for an exact n * hi
  v16 p = 1.9875691500e-4f * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const v16 t_round = v16{} + kRound;
  x = (v16)((i32x16)p + (((i32x16)t - (i32x16)t_round) << 23));
}

// tanh(y) = sign(y) (1 - e) / (1 + e) with e = e^-2|y|.
__attribute__((always_inline)) inline void tanh_of(v16& y) {
  v16 e = y > 0 ? -2.0f * y : 2.0f * y;
  exp_nonpositive(e);
  const v16 one = v16{} + 1.0f;
  const v16 magnitude = (one - e) / (one + e);
  y = y < 0 ? -magnitude : magnitude;
}

// x = cap * tanh(x / cap): Gemma-2's soft-capping of attention scores and logits.
__attribute__((always_inline)) inline void soft_cap(v16& x, float cap) {
  x /= cap;
  tanh_of(x);
  x *= cap;
}

}  // namespace brisk::cpu
