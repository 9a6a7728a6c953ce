#pragma once

#include <cstdint>

namespace brisk::cpu {

// The MLP activations of ref::silu_mul and ref::gelu_tanh, 16 lanes at a time with a vector exp
// (libm's scalar expf/tanhf were ~10% of sotu-llama's prefill next to its matmuls). Results stay
// within a few ulp of the reference. Single-threaded: the backend splits the range.
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
void gelu_tanh(float* x, int64_t n);

}  // namespace brisk::cpu
