// AVX-512 outer-product tiles for the training GEMMs (train_gemm_kernels.h). Compiled with
// -mavx512f/bw/vl/dq (src/CMakeLists.txt); train_gemm.cc only calls in after cpu_features()
// confirms the ISA.
//
// Each step loads V vectors of a packed B row once and multiplies them by R broadcast elements of
// A: R * V FMAs for V loads + R broadcasts, no lane sums (every lane is its own output).
#include <immintrin.h>

#include <utility>

#include "backends/cpu/train_gemm_kernels.h"

// GCC 12's intrinsic headers build "undefined" vectors from themselves, which its own
// -Wuninitialized then flags at inlined casts: a known false positive (see matmul_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace brisk::cpu::kernels {

namespace {

constexpr int kLanes = 16;

// Every loop over R or V carries `#pragma GCC unroll` so that GCC unrolls before scalar
// replacement and keeps the accumulators in registers (bench/notes-cpu-matmul.md item 2).
template <int R, int V>
void outer_tile(const float* a, int64_t a_row, int64_t a_step, const float* b, int64_t ldb, int64_t depth,
                float* c, int64_t ldc, int64_t cols, TileOutput out, const float* next_c) {
  const __mmask16 last = __mmask16((1u << (cols - kLanes * (V - 1))) - 1);
  auto mask_of = [&](int v) { return v == V - 1 ? last : __mmask16(0xffff); };
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v)
      acc[r][v] = out == TileOutput::Accumulate ? _mm512_maskz_loadu_ps(mask_of(v), c + r * ldc + kLanes * v)
                                                : _mm512_setzero_ps();
  // The next tile (the driver's next call) starts by reading its C rows, which a whole pass over
  // C ago may have left L2 (dw at n = 8192: 4 MiB per thread). Fetching them now hides that wait
  // behind this tile's loop: 1 thread, m=2048 k=256 n=8192: dw 158 -> 177 GFLOP/s, the other
  // shapes +1-2%. After this tile's own loads: issued before them (from the driver), the same
  // prefetches gained nothing.
  if (next_c) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) _mm_prefetch((const char*)(next_c + r * ldc + kLanes * v), _MM_HINT_T0);
  }
  const float* ar[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) ar[r] = a + r * a_row;
  for (int64_t p = 0; p < depth; ++p) {
    __m512 bv[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) bv[v] = _mm512_load_ps(b + p * ldb + kLanes * v);
    const int64_t offset = p * a_step;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(ar[r][offset]);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) _mm512_mask_storeu_ps(c + r * ldc + kLanes * v, mask_of(v), acc[r][v]);
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

// 6 rows x 4 vectors (64 columns): 24 accumulators + 4 B vectors + 1 broadcast of the 32 zmm
// registers; each step is 24 FMAs (12 cycles at two per cycle) for 4 loads and 6 broadcasts.
// Measured against 4x4, 8x2, 8x3 and 7x4 (2 threads, the bench's training shapes): none better
// overall; 4x4 5-17% and 8x3 / 7x4 5-15% slower on dw, 8x2 up to 7% faster on some dx shapes
// but up to 14% slower on dw.
// Depth chunks of 256: a 64 KiB panel, which overflows the 48 KiB L1d, but its 256 bytes per
// 12-cycle step stream from L2 easily and the longer chunks halve the passes over C: 5-14%
// faster than an L1-resident 32 KiB panel (16 and 24 KiB slower still), 96-128 KiB no better.
constexpr OuterTiles kTiles =
    make_tiles<6, 4>(256, std::make_integer_sequence<int, kMaxOuterRows * kMaxOuterVectors>{});

}  // namespace

const OuterTiles* avx512_outer_tiles() { return &kTiles; }

}  // namespace brisk::cpu::kernels
