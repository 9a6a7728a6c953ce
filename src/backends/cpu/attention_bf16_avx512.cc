#include <immintrin.h>

#include "backends/cpu/attention_bf16.h"
#include "backends/cpu/matmul_kernels.h"

// This file is compiled for AVX-512: it calls no inline function from a shared header (an
// out-of-line copy built here could be the one the linker keeps for everyone, AVX2 machines too).

// GCC 12's intrinsic headers trip its own -Wuninitialized (see matmul_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace brisk::cpu::attention_bf16 {

namespace {

constexpr int64_t kLanes = 16;
constexpr int64_t kKeyBlock = 4;      // keys per score step
constexpr int64_t kValueQueries = 8;  // queries per value step

int64_t pairs(int64_t n) { return (n + 1) / 2; }
const float kZeros[kLanes] = {};  // the partner of an odd count's last row

// Two rows of 16 fp32 values -> 16 words, word l = (bf16 of a[l], bf16 of b[l]): the pair layout
// a dot product over consecutive keys (or elements) wants.
__m512i interleave_bf16(const float* a, const float* b) {
  const __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(a));
  const __m256i hi = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(b));
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                         22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(order, both);
}

// A row of n fp32 values as bf16 element pairs (a bf16 array read as 32-bit words), an odd last
// element paired with 0.
void row_to_pairs(const float* row, int64_t n, uint32_t* out) {
  uint16_t* h = reinterpret_cast<uint16_t*>(out);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + i),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(row + i)));
  if (i < n) {
    const __mmask16 tail = __mmask16((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(h + i, tail, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(tail, row + i)));
  }
  if (n % 2) h[n] = 0;
}

// Both passes are one pattern: acc[r][n] = sum over steps i of vector n of row i (16 words at
// vec + i * vec_stride + 16 n) dotted with the broadcast word word(r, i) -- two bf16 multiply-adds
// per lane and word. The loops are unrolled early (pragmas), or GCC keeps the accumulators in
// memory (notes item 2).
template <int R, int NV, class Word>
[[gnu::always_inline]] inline void dot_pairs(const uint32_t* vec, int64_t vec_stride, int64_t steps, Word word,
                                             __m512 (&acc)[R][NV]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_setzero_ps();
  for (int64_t i = 0; i < steps; ++i) {
    __m512i vv[NV];
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) vv[n] = _mm512_loadu_si512(vec + i * vec_stride + n * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i bv = _mm512_set1_epi32(int(word(r, i)));
#pragma GCC unroll 8
      for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_dpbf16_ps(acc[r][n], (__m512bh)vv[n], (__m512bh)bv);
    }
  }
}

// Scores of 16 * NV queries (element pairs, transposed) against kKeyBlock keys: one broadcast
// key pair feeds NV dot products.
template <int NV>
[[gnu::always_inline]] inline void score_step(const uint32_t* q_pairs, int64_t width,
                                              const uint32_t* const (&k)[kKeyBlock], int64_t n_pairs,
                                              float scale, float* probs) {
  __m512 acc[kKeyBlock][NV];
  dot_pairs(q_pairs, width, n_pairs, [&](int b, int64_t i) { return k[b][i]; }, acc);
#pragma GCC unroll 8
  for (int b = 0; b < kKeyBlock; ++b)
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n)
      _mm512_storeu_ps(probs + b * width + n * kLanes, _mm512_mul_ps(acc[b][n], _mm512_set1_ps(scale)));
}

// kValueQueries queries x 16 * NV output elements over all key pairs, outputs in registers: one
// broadcast probability pair per query feeds NV dot products with value pairs.
template <int NV>
[[gnu::always_inline]] inline void value_step(const uint32_t* p_pairs, int64_t width, const uint32_t* v_pairs,
                                              int64_t n_pairs, int64_t padded_dim, int64_t dim,
                                              float* out_block) {
  __m512 acc[kValueQueries][NV];
  dot_pairs(v_pairs + dim, padded_dim, n_pairs, [&](int a, int64_t j) { return p_pairs[j * width + a]; }, acc);
#pragma GCC unroll 8
  for (int a = 0; a < kValueQueries; ++a)
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) _mm512_storeu_ps(out_block + a * padded_dim + dim + n * kLanes, acc[a][n]);
}

}  // namespace

int64_t key_pair_words(int64_t n_keys, int64_t head_dim) { return n_keys * pairs(head_dim); }
int64_t value_pair_words(int64_t n_keys, int64_t padded_dim) { return pairs(n_keys) * padded_dim; }

int64_t scratch_words(int64_t n_keys, int64_t width, int64_t head_dim) {
  const int64_t for_scores = 2 * pairs(head_dim) * width;
  const int64_t for_values = pairs(n_keys) * width;
  return for_scores > for_values ? for_scores : for_values;
}

void keys_to_pairs(const float* const* k_rows, int64_t n_keys, int64_t head_dim, uint32_t* out) {
  for (int64_t j = 0; j < n_keys; ++j) row_to_pairs(k_rows[j], head_dim, out + j * pairs(head_dim));
}

void values_to_pairs(const float* const* v_rows, int64_t n_keys, int64_t padded_dim, uint32_t* out) {
  for (int64_t j = 0; j < pairs(n_keys); ++j) {
    const float* second = 2 * j + 1 < n_keys ? v_rows[2 * j + 1] : nullptr;
    for (int64_t d = 0; d < padded_dim; d += kLanes)
      _mm512_storeu_si512(out + j * padded_dim + d,
                          interleave_bf16(v_rows[2 * j] + d, second ? second + d : kZeros));
  }
}

void scores(const float* const* q, int64_t n_queries, int64_t width, const uint32_t* k_pairs, int64_t n_keys,
            int64_t head_dim, float scale, uint32_t* scratch, float* probs) {
  // Queries as element pairs, transposed: word (i, a) = query a's elements 2i, 2i + 1 (an odd
  // head_dim pairs its last element with 0), zero past n_queries. That is the matmul's packed
  // panel layout, so its packing (16 x 16 word transposes) turns the bf16 rows around.
  const int64_t n_pairs = pairs(head_dim);
  uint32_t* q_pairs = scratch;
  uint32_t* q_rows = q_pairs + n_pairs * width;  // [n_queries][n_pairs]
  for (int64_t a = 0; a < n_queries; ++a) row_to_pairs(q[a], head_dim, q_rows + a * n_pairs);
  kernels::avx512_packed_bf16_kernels()->pack(q_rows, 2 * n_pairs, n_queries, 2 * n_pairs,
                                              int(width / kLanes), q_pairs);
  for (int64_t a = 0; a < width; a += 2 * kLanes)
    for (int64_t j = 0; j < n_keys; j += kKeyBlock) {
      const uint32_t* k[kKeyBlock];
      for (int64_t b = 0; b < kKeyBlock; ++b)
        k[b] = k_pairs + (j + b < n_keys ? j + b : n_keys - 1) * n_pairs;
      if (a + kLanes < width)
        score_step<2>(q_pairs + a, width, k, n_pairs, scale, probs + j * width + a);
      else
        score_step<1>(q_pairs + a, width, k, n_pairs, scale, probs + j * width + a);
    }
}

void values(const float* probs, int64_t width, const uint32_t* v_pairs, int64_t n_keys, int64_t padded_dim,
            uint32_t* scratch, float* out_block) {
  // Probabilities as key pairs, like the values: word (j, a) = (p[2j][a], p[2j + 1][a]); an odd
  // key count pairs its last key with a zero probability (so whatever value shares its pair
  // contributes nothing).
  const int64_t n_pairs = pairs(n_keys);
  uint32_t* p_pairs = scratch;
  for (int64_t j = 0; j < n_pairs; ++j) {
    const bool odd = 2 * j + 1 == n_keys;
    for (int64_t a = 0; a < width; a += kLanes)
      _mm512_storeu_si512(
          p_pairs + j * width + a,
          interleave_bf16(probs + 2 * j * width + a, odd ? kZeros : probs + (2 * j + 1) * width + a));
  }
  for (int64_t a = 0; a < width; a += kValueQueries)
    for (int64_t d = 0; d < padded_dim; d += 2 * kLanes) {
      if (d + kLanes < padded_dim)
        value_step<2>(p_pairs + a, width, v_pairs, n_pairs, padded_dim, d, out_block + a * padded_dim);
      else
        value_step<1>(p_pairs + a, width, v_pairs, n_pairs, padded_dim, d, out_block + a * padded_dim);
    }
}

}  // namespace brisk::cpu::attention_bf16
