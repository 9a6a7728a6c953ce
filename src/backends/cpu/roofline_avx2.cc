// Peak loops for AVX2 machines (the fallback when AVX-512 is absent); compiled with -mavx2 -mfma.
#include <immintrin.h>

#include "backends/cpu/roofline.h"

namespace brisk::cpu::detail {

namespace {
volatile float g_sink;
}

uint64_t read_xor_avx2(const void* data, size_t bytes) {
  // Four streams at once, as in read_xor_avx512: one stream underuses the prefetchers.
  constexpr int kStreams = 4;
  const auto* p = static_cast<const __m256i*>(data);
  const size_t n = bytes / 32 / kStreams;
  __m256i acc[kStreams];
  for (int s = 0; s < kStreams; ++s) acc[s] = _mm256_setzero_si256();
  for (size_t i = 0; i < n; ++i) {
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s)
      acc[s] = _mm256_xor_si256(acc[s], _mm256_load_si256(p + size_t(s) * n + i));
  }
  for (size_t i = n * kStreams; i < bytes / 32; ++i)
    acc[0] = _mm256_xor_si256(acc[0], _mm256_load_si256(p + i));
  __m256i a = acc[0];
  for (int s = 1; s < kStreams; ++s) a = _mm256_xor_si256(a, acc[s]);
  return uint64_t(_mm256_extract_epi64(a, 0) | _mm256_extract_epi64(a, 1) | _mm256_extract_epi64(a, 2) |
                  _mm256_extract_epi64(a, 3));
}

double fma_loop_avx2(int64_t iters) {
  // 12 chains of 16 ymm registers: enough to cover latency x pipes on current x86 cores.
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(float(j));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_hadd_ps(h, h);
  g_sink = _mm_cvtss_f32(_mm_hadd_ps(h, h));
  return double(iters) * kChains * 8 * 2;
}

}  // namespace brisk::cpu::detail
