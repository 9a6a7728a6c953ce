// AVX2 + FMA outer-product tiles for the training GEMMs: the fallback for CPUs without AVX-512.
// Same form and the same per-element FMA order as train_gemm_avx512.cc with 8-lane vectors, so
// both give bit-identical results.
#include <immintrin.h>

#include <utility>

#include "backends/cpu/train_gemm_kernels.h"

namespace brisk::cpu::kernels {

namespace {

constexpr int kLanes = 8;

// Lanes [0, n) set, for maskload / maskstore of a partial last vector.
inline __m256i lane_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int R, int V>
void outer_tile(const float* a, int64_t a_row, int64_t a_step, const float* b, int64_t ldb, int64_t depth,
                float* c, int64_t ldc, int64_t cols, TileOutput out, const float* next_c) {
  const __m256i last = lane_mask(cols - kLanes * (V - 1));
  const __m256i all = _mm256_set1_epi32(-1);
  __m256 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[r][v] = out == TileOutput::Accumulate
                      ? _mm256_maskload_ps(c + r * ldc + kLanes * v, v == V - 1 ? last : all)
                      : _mm256_setzero_ps();
  // The next tile's C rows, as in train_gemm_avx512.cc (a row of this tile is at most 64 bytes:
  // its first and last float cover it).
  if (next_c) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      _mm_prefetch((const char*)(next_c + r * ldc), _MM_HINT_T0);
      _mm_prefetch((const char*)(next_c + r * ldc + kLanes * V - 1), _MM_HINT_T0);
    }
  }
  const float* ar[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) ar[r] = a + r * a_row;
  for (int64_t p = 0; p < depth; ++p) {
    __m256 bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) bv[v] = _mm256_load_ps(b + p * ldb + kLanes * v);
    const int64_t offset = p * a_step;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(ar[r] + offset);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm256_maskstore_ps(c + r * ldc + kLanes * v, v == V - 1 ? last : all, acc[r][v]);
}

template <int Rows, int Vectors, int... I>
constexpr OuterTiles make_tiles(int depth, std::integer_sequence<int, I...>) {
  OuterTiles tiles{Rows, Vectors, kLanes, depth, {}};
  auto fill = [&](auto index) {
    constexpr int r = decltype(index)::value / kMaxOuterVectors + 1;
    constexpr int v = decltype(index)::value % kMaxOuterVectors + 1;
    if constexpr (r <= Rows && v <= Vectors) tiles.tile[r - 1][v - 1] = &outer_tile<r, v>;
  };
  (fill(std::integral_constant<int, I>{}), ...);
  return tiles;
}

// 6 rows x 2 vectors (16 columns): 12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm
// registers (the classic Haswell sgemm tile). Depth chunks of 512 (a 32 KiB panel): 1024 left dw
// at m=2048 k=256 n=8192 at 85 GFLOP/s (each step of a tile reads a line of dy on another page),
// 512 gets 137; 256 is as good there but up to 9% slower on the other training shapes.
constexpr OuterTiles kTiles =
    make_tiles<6, 2>(512, std::make_integer_sequence<int, kMaxOuterRows * kMaxOuterVectors>{});

}  // namespace

const OuterTiles* avx2_outer_tiles() { return &kTiles; }

}  // namespace brisk::cpu::kernels
