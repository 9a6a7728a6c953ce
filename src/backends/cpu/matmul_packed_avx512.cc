// AVX512-BF16 tiles in outer-product form, for many activation rows (prefill, large batches).
//
// The dot-product tiles (matmul_avx512.cc) leave every output as 16 partial sums to be added
// across lanes at the end: ~3.5 instructions per output, a fifth of the work when k = 384. Here
// lanes run over 16 output features instead, so sums finish in place. That needs the 16 features'
// weights side by side for each pair of k: a panel of weight rows is packed (once at load for
// BlockOrder::Bf16Pairs, else per call and thread into a scratch that stays in cache) so that
// 32-bit lane j of vector p holds w[j][2p], w[j][2p + 1], the pair vdpbf16ps multiplies by a
// broadcast activation pair.
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "backends/cpu/matmul_kernels.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace brisk::cpu::kernels {

namespace {

// Transposes a 16 x 16 block of 32-bit elements in registers (rows in, columns out): 64 shuffles.
inline void transpose16(__m512i (&v)[16]) {
  __m512i t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {  // lane L of t[2i] / t[2i+1]: rows 2i, 2i+1 at columns 4L+0..1 / 4L+2..3
    t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // lane L of v[4i + c]: rows 4i..4i+3 at column 4L + c
    v[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    v[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    v[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    v[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  // Column 4L + c is lane L of v[c], v[4 + c], v[8 + c], v[12 + c], in that order.
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    const __m512i ab02 = _mm512_shuffle_i32x4(v[c], v[4 + c], 0x88),
                  ab13 = _mm512_shuffle_i32x4(v[c], v[4 + c], 0xdd);
    const __m512i cd02 = _mm512_shuffle_i32x4(v[8 + c], v[12 + c], 0x88);
    const __m512i cd13 = _mm512_shuffle_i32x4(v[8 + c], v[12 + c], 0xdd);
    t[c] = _mm512_shuffle_i32x4(ab02, cd02, 0x88);       // column c
    t[4 + c] = _mm512_shuffle_i32x4(ab13, cd13, 0x88);   // column 4 + c
    t[8 + c] = _mm512_shuffle_i32x4(ab02, cd02, 0xdd);   // column 8 + c
    t[12 + c] = _mm512_shuffle_i32x4(ab13, cd13, 0xdd);  // column 12 + c
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) v[i] = t[i];
}

// A PackFn (matmul_kernels.h).
void pack_pairs(const void* wp, int64_t ldw, int64_t n_cols, int64_t k_len, int vectors, void* outp) {
  const uint16_t* w = static_cast<const uint16_t*>(wp);
  uint32_t* out = static_cast<uint32_t*>(outp);
  const int64_t width = int64_t(vectors) * 16;  // dwords per packed pair-row
  for (int64_t j0 = 0; j0 < width; j0 += 16) {
    for (int64_t k0 = 0; k0 < k_len; k0 += 32) {  // 16 pairs of 16 rows per block
      const int64_t left = k_len - k0;
      const __mmask32 mask = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
      __m512i v[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        v[j] = j0 + j < n_cols ? _mm512_maskz_loadu_epi16(mask, w + (j0 + j) * ldw + k0)
                               : _mm512_setzero_si512();
      transpose16(v);
      const int64_t pairs = std::min<int64_t>(16, (left + 1) / 2);
      for (int64_t p = 0; p < pairs; ++p) _mm512_storeu_si512(out + (k0 / 2 + p) * width + j0, v[p]);
    }
  }
}

// rows activation rows by C vectors of 16 output features, over k_len elements (pairs of them).
template <int R, int C>
void packed_tile(const void* xp, int64_t ldx, const void* panelp, int64_t k_len, float* y, int64_t ldy,
                 int64_t n_cols, const float* bias, TileOutput out) {
  const uint16_t* x = static_cast<const uint16_t*>(xp);
  const __m512i* panel = static_cast<const __m512i*>(panelp);
  __m512 acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();

  const int64_t pairs = (k_len + 1) / 2;  // an odd k reads one zero of x's padding, times a zero weight
  for (int64_t p = 0; p < pairs; ++p) {
    __m512i wv[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) wv[c] = _mm512_loadu_si512(panel + p * C + c);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, x + r * ldx + 2 * p, sizeof(pair));
      const __m512bh xv = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, (__m512bh)wv[c]);
    }
  }

  // Only the last vector can be partial.
  const int64_t tail = n_cols - 16 * (C - 1);
  const __mmask16 last = tail >= 16 ? __mmask16(0xffff) : __mmask16((1u << tail) - 1);
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    const __mmask16 m = c == C - 1 ? last : __mmask16(0xffff);
    const __m512 b =
        bias && out == TileOutput::Store ? _mm512_maskz_loadu_ps(m, bias + 16 * c) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float* dst = y + r * ldy + 16 * c;
      const __m512 base = out == TileOutput::Accumulate ? _mm512_maskz_loadu_ps(m, dst) : b;
      _mm512_mask_storeu_ps(dst, m, _mm512_add_ps(acc[r][c], base));
    }
  }
}

template <int... I>
constexpr PackedKernels make_packed(std::integer_sequence<int, I...>) {
  PackedKernels set{kMaxPackedRows, kMaxPackedVectors, &pack_pairs, {}};
  auto fill = [&](auto index) {
    constexpr int r = decltype(index)::value / kMaxPackedVectors + 1;
    constexpr int c = decltype(index)::value % kMaxPackedVectors + 1;
    set.tile[r - 1][c - 1] = &packed_tile<r, c>;
  };
  (fill(std::integral_constant<int, I>{}), ...);
  return set;
}

// 8 rows x 3 vectors: 24 accumulators, 3 weight vectors and a broadcast in 32 registers; each pair
// step does 24 dot products for 3 loads and 8 broadcasts.
constexpr PackedKernels kPackedBf16 =
    make_packed(std::make_integer_sequence<int, kMaxPackedRows * kMaxPackedVectors>{});

}  // namespace

const PackedKernels* avx512_packed_bf16_kernels() { return &kPackedBf16; }

}  // namespace brisk::cpu::kernels
