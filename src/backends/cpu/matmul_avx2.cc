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

// Lane r of the result is the sum of the 8 lanes of acc[r], for R <= 4.
template <int R>
inline __m128 sum_lanes(const __m256* acc) {
  __m256 h[4];
  for (int r = 0; r < 4; ++r) h[r] = r < R ? acc[r] : _mm256_setzero_ps();
  __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

template <class T, int R, int C>
void tile(const void* xp, int64_t ldx, const void* wp, int64_t ldw, int64_t k_len, float* y,
          int64_t ldy, const float* bias, TileOutput out) {
  using W = typename T::W;
  const float* x[C];
  const W* w[R];
  for (int c = 0; c < C; ++c) x[c] = static_cast<const float*>(xp) + c * ldx;
  for (int r = 0; r < R; ++r) w[r] = static_cast<const W*>(wp) + r * ldw;

  __m256 acc[C][R];
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_setzero_ps();

  int64_t i = 0;
  for (; i + 8 <= k_len; i += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = T::load_w(w[r] + i);
    for (int c = 0; c < C; ++c) {
      __m256 xv = _mm256_loadu_ps(x[c] + i);
      for (int r = 0; r < R; ++r) acc[c][r] = _mm256_fmadd_ps(xv, wv[r], acc[c][r]);
    }
  }
  if (i < k_len) {
    int64_t n = k_len - i;
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load_tail(w[r] + i, n, [](const W* p) { return T::load_w(p); });
    for (int c = 0; c < C; ++c) {
      __m256 xv = load_tail(x[c] + i, n, [](const float* p) { return load_f32(p); });
      for (int r = 0; r < R; ++r) acc[c][r] = _mm256_fmadd_ps(xv, wv[r], acc[c][r]);
    }
  }

  for (int c = 0; c < C; ++c) {
    float sums[4];
    _mm_storeu_ps(sums, sum_lanes<R>(acc[c]));
    float* yc = y + c * ldy;
    for (int r = 0; r < R; ++r) {
      float base = out == TileOutput::Accumulate ? yc[r] : bias ? bias[r] : 0.0f;
      yc[r] = base + sums[r];
    }
  }
}

template <class T, int... I>
constexpr KernelSet make_set(std::integer_sequence<int, I...>) {
  // 4 weight rows x 2 activation rows: 8 accumulators + 4 weight vectors + 1 activation vector
  // stay within the 16 ymm registers.
  KernelSet set{false, 4, 2, 4, {}};
  auto fill = [&](auto index) {
    constexpr int r = decltype(index)::value / 2 + 1;
    constexpr int c = decltype(index)::value % 2 + 1;
    set.tile[r - 1][c - 1] = &tile<T, r, c>;
  };
  (fill(std::integral_constant<int, I>{}), ...);
  return set;
}

template <class T>
constexpr KernelSet make_set() {
  return make_set<T>(std::make_integer_sequence<int, 4 * 2>{});
}

constexpr KernelSet kF32Set = make_set<F32Weights>();
constexpr KernelSet kF16Set = make_set<F16Weights>();
constexpr KernelSet kBf16Set = make_set<Bf16Weights>();

}  // namespace

const KernelSet* avx2_kernels(DType wtype) {
  switch (wtype) {
    case DType::F32: return &kF32Set;
    case DType::F16: return &kF16Set;
    case DType::BF16: return &kBf16Set;
    default: return nullptr;
  }
}

}  // namespace brisk::cpu::kernels
