// Peak loops for AVX-512 machines; compiled with -mavx512f/bf16 (see src/CMakeLists.txt) and only
// called after cpu_features() says the instructions exist.
#include <immintrin.h>

#include "backends/cpu/roofline.h"

// GCC 12's intrinsic headers build "undefined" vectors from themselves, which its own
// -Wuninitialized then flags inside the inlined reductions: a known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace brisk::cpu::detail {

namespace {
volatile float g_sink;
}

uint64_t read_xor_avx512(const void* data, size_t bytes) {
  // Four streams at once, one per quarter of the buffer: a single sequential stream leaves
  // bandwidth unused (measured 1 / 4 / 8 / 16 streams: 64-68 / 78-79 / 68-69 / 61-63 GB/s on
  // 2 threads of the Zen 5 host), and the decode kernels also read several rows at once.
  constexpr int kStreams = 4;
  const auto* p = static_cast<const __m512i*>(data);
  const size_t n = bytes / 64 / kStreams;
  __m512i acc[kStreams];
  for (int s = 0; s < kStreams; ++s) acc[s] = _mm512_setzero_si512();
  for (size_t i = 0; i < n; ++i) {
#pragma GCC unroll 4
    for (int s = 0; s < kStreams; ++s)
      acc[s] = _mm512_xor_si512(acc[s], _mm512_load_si512(p + size_t(s) * n + i));
  }
  for (size_t i = n * kStreams; i < bytes / 64; ++i)
    acc[0] = _mm512_xor_si512(acc[0], _mm512_load_si512(p + i));
  __m512i a = acc[0];
  for (int s = 1; s < kStreams; ++s) a = _mm512_xor_si512(a, acc[s]);
  return uint64_t(_mm512_reduce_or_epi64(a));
}

double fma_loop_avx512(int64_t iters) {
  // 16 chains: more than latency (4) x FMA pipes (2) so the pipes never wait on a result.
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-3f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  g_sink = _mm512_reduce_add_ps(s);
  return double(iters) * kChains * 16 * 2;
}

double bf16_dot_loop_avx512(int64_t iters) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.5f));
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  g_sink = _mm512_reduce_add_ps(s);
  return double(iters) * kChains * 32 * 2;
}

}  // namespace brisk::cpu::detail
