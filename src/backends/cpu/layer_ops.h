#pragma once
// The layer ops between the matmuls, in 16-lane vectors: the ref:: versions are scalar (a double
// add chain per RMSNorm row, a libm call per SiLU / GELU value), which took ~10% of sotu-llama's
// prefill next to its 384-wide matmuls. Single-threaded: the backend splits the rows or range.
#include <cstdint>

namespace brisk::cpu {

// ref::rms_norm, sums of squares in 8 double lanes (the reference's double sum, in another order).
void rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps, float* y);

// x += y (ref::add, which GCC leaves scalar: x and y may overlap).
void add(float* x, const float* y, int64_t n);

// ref::rope (rotate-half pairs, tables [position][head_dim / 2]), 16 pairs at a time; ref::rope
// itself when head_dim / 2 is not a multiple of 16.
void rope(float* x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* positions,
          const float* cos_table, const float* sin_table);

// ref::silu_mul and ref::gelu_tanh through a vector exp: within a few ulp of the reference.
void silu_mul(const float* gate, const float* up, float* out, int64_t n);
void gelu_tanh(float* x, int64_t n);
// ref::mul, ref::scale, ref::soft_cap (tanh through the vector exp).
void mul(float* x, const float* y, int64_t n);
void scale(float* x, int64_t n, float s);
void soft_cap(float* x, int64_t n, float cap);
// ref::gelu_erf with libm's erf per value: encoders' MLPs are a small share of their time.
void gelu_erf(float* x, int64_t n);

}  // namespace brisk::cpu
