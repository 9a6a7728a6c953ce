// The integer tiles over sparse Q8 rows (backends/cpu/sparse_q8.h). Compiled with VBMI2 (byte
// expand) on top of the AVX-512 flags; called only where sparse_q8_supported().
#include <immintrin.h>

#include <bit>

#include "backends/cpu/sparse_q8.h"
#include "core/cpu_features.h"

namespace brisk::cpu::quant_kernels {

namespace {

constexpr int kGroupsPerBlock = 4;  // a Q8 block: 256 inputs

// The dense Q8 tile's arithmetic (matmul_quant_avx512.cc, q8_tile): per 64-input group, codes + 128
// against the activation codes in int32 lanes, times the lanes' scales into fp32, in the same
// order, so the sums are the dense layout's bit for bit. Only the load differs: a row's
// popcount(mask) codes, expanded to their inputs' places (zeros elsewhere, as the dense codes).
// w: the row group (sparse_q8.h); first: the tile's first row in it.
template <int R, int C>
void sparse_q8_tile(const Int8Rows& x, const void* w, size_t first, size_t, int64_t n_blocks, float* y, int64_t ldy,
                    const float* bias) {
  const int64_t groups = n_blocks * kGroupsPerBlock;
  const auto* p = static_cast<const uint8_t*>(w);
  float scale[R];
  __builtin_memcpy(scale, p + 4 * first, sizeof(scale));
  p += 64;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m512 acc[C][R];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[c][r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    uint64_t masks[kDecodeRows];
    __builtin_memcpy(masks, p, sizeof(masks));
    const uint8_t* codes = p + 64;
    for (size_t i = 0; i < first; ++i) codes += std::popcount(masks[i]);
    __m512i wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const uint64_t m = masks[first + r];
      wv[r] = _mm512_xor_si512(_mm512_maskz_expand_epi8(m, _mm512_loadu_si512(codes)), flip);
      codes += std::popcount(m);
    }
    for (size_t i = first + R; i < kDecodeRows; ++i) codes += std::popcount(masks[i]);
    p = codes;  // the next group's masks follow this group's last row's codes
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const __m512i xv = _mm512_loadu_si512(x.codes + c * x.ld + kGroupValues * g);
      const __m512 sv = _mm512_loadu_ps(x.lane_scales + c * x.ld / 4 + kGroupValues / 4 * g);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
        acc[c][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[r], xv)), sv,
                                    acc[c][r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      y[c * ldy + r] = (_mm512_reduce_add_ps(acc[c][r]) - 128.0f * x.row_sums[c]) * (n_blocks > 0 ? scale[r] : 0.0f) +
                       (bias ? bias[r] : 0.0f);
}

template <int R, int C>
constexpr void fill(Int8KernelSet& s) {
  s.tile[R - 1][C - 1] = &sparse_q8_tile<R, C>;
  if constexpr (C < kTileCols) fill<R, C + 1>(s);
  else if constexpr (R < kTileRows) fill<R + 1, 1>(s);
}

}  // namespace

const Int8KernelSet* avx512_sparse_q8_kernels() {
  static const Int8KernelSet set = [] {
    Int8KernelSet s{};
    const Int8KernelSet* dense = avx512_vnni_int8_kernels(DType::Q8);
    if (!dense || !sparse_q8_supported()) return s;
    fill<1, 1>(s);
    s.decode_tile = &sparse_q8_tile<kDecodeRows, 1>;
    s.group = dense->group;
    s.prepare_row = dense->prepare_row;  // the activations of the dense Q8 tiles, in their order
    return s;
  }();
  return set.prepare_row ? &set : nullptr;
}

}  // namespace brisk::cpu::quant_kernels
