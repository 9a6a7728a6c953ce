// AVX2 + FMA + F16C matmul tiles: the fallback for CPUs without AVX-512, and for BF16 weights on
// CPUs without AVX512_BF16. Same dot-product form as matmul_avx512.cc with 8-lane vectors; bf16
// weights are widened to fp32 (a 16-bit shift) and multiplied with fp32 activations.
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "backends/cpu/matmul_kernels.h"

namespace brisk::cpu::kernels {

namespace {

// AVX2 has no masked 16-bit loads, so a k tail is copied into a zeroed 8-element buffer first.
template <class E, class Load>
inline __m256 load_tail(const E* p, int64_t n, Load load) {
  E buf[8] = {};
  std::memcpy(buf, p, size_t(n) * sizeof(E));
  return load(static_cast<const E*>(buf));
}

inline __m256 load_f32(const float* p) { return _mm256_loadu_ps(p); }

struct F32Weights {
  using W = float;
  static __m256 load_w(const W* p) { return load_f32(p); }
};
struct F16Weights {
  using W = uint16_t;
  static __m256 load_w(const W* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
};
struct Bf16Weights {
  using W = uint16_t;
  static __m256 load_w(const W* p) {
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
};

// Lane r of the result is the sum of the 8 lanes of h_r. Vectors pass by value so that GCC keeps
// the tile's accumulators in registers (see matmul_avx512.cc).
inline __m128 sum_lanes4(__m256 h0, __m256 h1, __m256 h2, __m256 h3) {
  __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(h0, h1), _mm256_hadd_ps(h2, h3));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

// Prefetch distance for the activation and weight rows of prefill tiles (as in the AVX-512 file).
constexpr int kPrefetchBytes = 256;

// One k-step of a tile (8 elements); `n` < 8 reads a zero-padded tail. GCC unrolls the constant
// loops early only with the pragmas, which keeps the accumulators out of memory.
template <class T, int R, int C>
__attribute__((always_inline)) inline void step(__m256 (&acc)[C][R], const float* const (&x)[C],
                                                const typename T::W* const (&w)[R], int64_t i, int64_t n) {
  using W = typename T::W;
  __m256 wv[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    wv[r] = n == 8 ? T::load_w(w[r] + i) : load_tail(w[r] + i, n, [](const W* p) { return T::load_w(p); });
    // Keeps the weight vector in a register: GCC would otherwise fold the fp32 load into each of
    // the C FMAs that use it, doubling the loads per step (measured 77 -> 93 GFLOP/s in L1).
    if constexpr (C > 1) __asm__("" : "+x"(wv[r]));
  }
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    __m256 xv =
        n == 8 ? load_f32(x[c] + i) : load_tail(x[c] + i, n, [](const float* p) { return load_f32(p); });
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_fmadd_ps(xv, wv[r], acc[c][r]);
  }
}

template <class T, int R, int C>
void tile(const void* xp, int64_t ldx, const void* wp, int64_t ldw, int64_t k_len, float* y, int64_t ldy,
          const float* bias, TileOutput out) {
  using W = typename T::W;
  const float* x[C];
  const W* w[R];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) x[c] = static_cast<const float*>(xp) + c * ldx;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = static_cast<const W*>(wp) + r * ldw;

  __m256 acc[C][R];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_setzero_ps();

  // Two steps per iteration: one prefetch per 64-byte line, and half the loop overhead, which
  // otherwise competes with 8 FMAs per 4 cycles for the front end.
  int64_t i = 0;
  for (; i + 16 <= k_len; i += 16) {
    if constexpr (C > 1) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) _mm_prefetch((const char*)(w[r] + i) + kPrefetchBytes, _MM_HINT_T0);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) _mm_prefetch((const char*)(x[c] + i) + kPrefetchBytes, _MM_HINT_T0);
    }
    step<T, R, C>(acc, x, w, i, 8);
    step<T, R, C>(acc, x, w, i + 8, 8);
  }
  for (; i + 8 <= k_len; i += 8) step<T, R, C>(acc, x, w, i, 8);
  if (i < k_len) step<T, R, C>(acc, x, w, i, k_len - i);

#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    __m256 h[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) h[r] = r < R ? acc[c][r] : _mm256_setzero_ps();
    float sums[8];
    _mm_storeu_ps(sums, sum_lanes4(h[0], h[1], h[2], h[3]));
    if constexpr (R > 4) _mm_storeu_ps(sums + 4, sum_lanes4(h[4], h[5], h[6], h[7]));
    float* yc = y + c * ldy;
    for (int r = 0; r < R; ++r) {
      float base = out == TileOutput::Accumulate ? yc[r] : bias ? bias[r] : 0.0f;
      yc[r] = base + sums[r];
    }
  }
}

template <class T, int... I>
constexpr KernelSet make_set(int decode_rows, std::integer_sequence<int, I...>) {
  // 4 weight rows x 2 activation rows: 8 accumulators + 4 weight vectors + 1 activation vector
  // stay within the 16 ymm registers. Decode tiles (one activation row) keep no weight vector,
  // so they can take up to 8 rows; 6 measured best (bf16 decode 48 -> 56 GB/s over 4 rows, 8 rows
  // in between).
  // A tile sums each row in the same order whatever its activation rows: decode order as it is.
  KernelSet set{XForm::F32, XForm::F32, 4, 2, decode_rows, 4, 2, {}, {}, {}};
  auto fill = [&](auto index) {
    constexpr int r = decltype(index)::value / kMaxTileCols + 1;
    constexpr int c = decltype(index)::value % kMaxTileCols + 1;
    if constexpr ((r <= 4 && c <= 2) || c == 1) set.tile[r - 1][c - 1] = set.few_tile[r - 1][c - 1] = &tile<T, r, c>;
    if constexpr (c == 1) set.decode_tile[r - 1] = &tile<T, r, 1>;
  };
  (fill(std::integral_constant<int, I>{}), ...);
  return set;
}

template <class T>
constexpr KernelSet make_set(int decode_rows) {
  return make_set<T>(decode_rows, std::make_integer_sequence<int, kMaxTileRows * kMaxTileCols>{});
}

constexpr KernelSet kF32Set = make_set<F32Weights>(6);
constexpr KernelSet kF16Set = make_set<F16Weights>(6);
constexpr KernelSet kBf16Set = make_set<Bf16Weights>(6);

}  // namespace

const KernelSet* avx2_kernels(DType wtype) {
  switch (wtype) {
    case DType::F32:
      return &kF32Set;
    case DType::F16:
      return &kF16Set;
    case DType::BF16:
      return &kBf16Set;
    default:
      return nullptr;
  }
}

}  // namespace brisk::cpu::kernels
