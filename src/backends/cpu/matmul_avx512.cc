// AVX-512 matmul tiles (F32, F16 and BF16 weights). Compiled with -mavx512f/bw/vl/dq/bf16 (see
// src/CMakeLists.txt); matmul.cc only calls in after cpu_features() confirms the ISA.
//
// Dot-product form: a tile keeps rows x cols accumulators of 16 fp32 lanes, streams the k axis
// of both operands in their stored layout (no repacking) and reduces the lanes once at the end.
#include <immintrin.h>

#include <utility>

#include "backends/cpu/matmul_kernels.h"

// GCC 12's intrinsic headers build "undefined" vectors from themselves (_mm512_undefined_ps), which
// its own -Wuninitialized then flags at every inlined cast or conversion: a known false positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace brisk::cpu::kernels {

namespace {

// Weight-dtype traits: how many k elements one step consumes, how to load them and how to
// multiply-add them into 16 fp32 lanes.
struct F32Weights {
  using X = float;
  using W = float;
  using XV = __m512;
  using WV = __m512;
  using Mask = __mmask16;
  static constexpr int kStep = 16;
  static Mask tail_mask(int64_t n) { return Mask((1u << n) - 1); }
  static XV load_x(const X* p) { return _mm512_loadu_ps(p); }
  static XV load_x(const X* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static WV load_w(const W* p) { return _mm512_loadu_ps(p); }
  static WV load_w(const W* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static __m512 madd(__m512 acc, XV x, WV w) { return _mm512_fmadd_ps(x, w, acc); }
};

struct F16Weights {
  using X = float;
  using W = uint16_t;
  using XV = __m512;
  using WV = __m512;
  using Mask = __mmask16;
  static constexpr int kStep = 16;
  static Mask tail_mask(int64_t n) { return Mask((1u << n) - 1); }
  static XV load_x(const X* p) { return _mm512_loadu_ps(p); }
  static XV load_x(const X* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  // F16C widening happens once per weight vector and is shared by all activation rows.
  static WV load_w(const W* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
  static WV load_w(const W* p, Mask m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
  static __m512 madd(__m512 acc, XV x, WV w) { return _mm512_fmadd_ps(x, w, acc); }
};

// Exact bf16: as F16 (fp32 activations and FMAs), but weights are widened by a 16-bit shift, so
// results equal an fp32 reference on the same weights.
struct Bf16WidenWeights : F16Weights {
  static WV widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static WV load_w(const W* p) { return widen(_mm256_loadu_si256((const __m256i*)p)); }
  static WV load_w(const W* p, Mask m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

// x arrives already rounded to bf16; each vdpbf16ps does 32 multiply-adds into 16 fp32 lanes.
struct Bf16Weights {
  using X = uint16_t;
  using W = uint16_t;
  using XV = __m512i;
  using WV = __m512i;
  using Mask = __mmask32;
  static constexpr int kStep = 32;
  static Mask tail_mask(int64_t n) { return Mask((1u << n) - 1); }
  static XV load_x(const X* p) { return _mm512_loadu_si512(p); }
  static XV load_x(const X* p, Mask m) { return _mm512_maskz_loadu_epi16(m, p); }
  static WV load_w(const W* p) { return _mm512_loadu_si512(p); }
  static WV load_w(const W* p, Mask m) { return _mm512_maskz_loadu_epi16(m, p); }
  static __m512 madd(__m512 acc, XV x, WV w) { return _mm512_dpbf16_ps(acc, (__m512bh)x, (__m512bh)w); }
};

// Lane r of the result is the sum of the 8 lanes of h_r. A shared add tree costs about one
// instruction per input instead of ~6 for separate reductions, which matters when k is short.
// Vectors pass by value: an array behind a pointer would keep GCC from holding the tile's
// accumulators in registers.
inline __m256 sum_lanes8(__m256 h0, __m256 h1, __m256 h2, __m256 h3, __m256 h4, __m256 h5, __m256 h6,
                         __m256 h7) {
  // hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7]
  __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(h0, h1), _mm256_hadd_ps(h2, h3));
  __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(h4, h5), _mm256_hadd_ps(h6, h7));
  return _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), _mm256_permute2f128_ps(t0, t1, 0x31));
}

inline __m256 fold_halves(__m512 v) {
  return _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
}

// y[r] (+ bias[r], or + y[r] when accumulating) = the sum of the 16 lanes of acc[r], for r < R.
template <int R>
__attribute__((always_inline)) inline void write_sums(const __m512 (&acc)[R], float* y, const float* bias,
                                                      TileOutput out) {
  const __mmask8 rows_mask = __mmask8((1u << R) - 1);
  __m256 h[8];
#pragma GCC unroll 8
  for (int r = 0; r < 8; ++r) h[r] = r < R ? fold_halves(acc[r]) : _mm256_setzero_ps();
  __m256 s = sum_lanes8(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]);
  if (out == TileOutput::Accumulate)
    s = _mm256_add_ps(s, _mm256_maskz_loadu_ps(rows_mask, y));
  else if (bias)
    s = _mm256_add_ps(s, _mm256_maskz_loadu_ps(rows_mask, bias));
  _mm256_mask_storeu_ps(y, rows_mask, s);
}

// Software prefetch distances for prefill tiles (C > 1). Activation rows stream from L2 (the
// weight panel stays in L1): the hardware prefetcher alone left ~8% of the dot-product rate
// unused, 4 steps (256 B) ahead recovers it; 128 B is as good, 512 B+ worse. Weight rows are in
// L1 except on the first tile of each panel, when they come from memory as 6 separate streams;
// the same distance there gained 7% on panels of strided rows (k = 5632) in isolation, 1-2% end
// to end. Decode tiles (C = 1) stream every weight row from DRAM once: 8 steps (512 B) ahead
// keeps more lines in flight than the hardware prefetcher alone (+10-15% GB/s; 1 KiB similar,
// 2 KiB worse).
constexpr int kXPrefetchBytes = 256;
constexpr int kWPrefetchBytes = 256;
constexpr int kDecodePrefetchBytes = 512;

// Decode tiles with rows up to this long run their rows one after another, so the tile's weights
// are one ascending stream: R short rows side by side are R short streams, which the prefetchers
// served at ~80% of the rate (bf16, k = 2048). Longer rows are long streams already, and side by
// side they measured faster (k = 5632: 22 against 16 GB/s). notes item 25. Each row's sums keep
// their order either way, so results are the same.
constexpr int64_t kSequentialRowBytes = 4096;

// A decode tile's rows one after another (sums[r] = one_row(w[r])) when they are short enough;
// false for longer rows, which the caller runs side by side.
template <int R, class W, class OneRow>
[[gnu::always_inline]] inline bool rows_in_turn(int64_t k_len, const W* const (&w)[R], __m512 (&sums)[R],
                                                OneRow one_row) {
  if (k_len * int64_t(sizeof(W)) > kSequentialRowBytes) return false;
  for (int r = 0; r < R; ++r) sums[r] = one_row(w[r]);
  return true;
}

// One k-step of a tile: weight vectors are loaded once and reused by every activation row.
// `mask...` is empty for full steps (plain loads) or one tail mask (masked loads). Every loop
// over R or C carries `#pragma GCC unroll`: GCC then unrolls before scalar replacement and keeps
// the accumulator array in registers; without it the array lives on the stack (see the notes).
template <class T, int R, int C, class... Mask>
__attribute__((always_inline)) inline void step(__m512 (&acc)[C][R], const typename T::X* const (&x)[C],
                                                const typename T::W* const (&w)[R], int64_t i, Mask... mask) {
  typename T::WV wv[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    _mm_prefetch((const char*)(w[r] + i) + (C > 1 ? kWPrefetchBytes : kDecodePrefetchBytes), _MM_HINT_T0);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) wv[r] = T::load_w(w[r] + i, mask...);
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    if constexpr (C > 1) _mm_prefetch((const char*)(x[c] + i) + kXPrefetchBytes, _MM_HINT_T0);
    typename T::XV xv = T::load_x(x[c] + i, mask...);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[c][r] = T::madd(acc[c][r], xv, wv[r]);
  }
}

template <class T, int R, int C>
void tile(const void* xp, int64_t ldx, const void* wp, int64_t ldw, int64_t k_len, float* y, int64_t ldy,
          const float* bias, TileOutput out) {
  using X = typename T::X;
  using W = typename T::W;
  const X* x[C];
  const W* w[R];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) x[c] = static_cast<const X*>(xp) + c * ldx;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = static_cast<const W*>(wp) + r * ldw;

  __m512 acc[C][R];
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[c][r] = _mm512_setzero_ps();

  // Later k-chunks add into y, whose lines were last touched a whole pass over the panels ago;
  // fetching them now hides that miss behind the k-loop instead of stalling the epilogue.
  if (out == TileOutput::Accumulate) {
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      _mm_prefetch((const char*)(y + c * ldy), _MM_HINT_T0);
      _mm_prefetch((const char*)(y + c * ldy + R - 1), _MM_HINT_T0);
    }
  }

  if constexpr (C == 1) {
    auto one_row = [&](const W* row) {
      __m512 row_acc[1][1] = {{_mm512_setzero_ps()}};
      const W* const rows[1] = {row};
      int64_t i = 0;
      for (; i + T::kStep <= k_len; i += T::kStep) step<T, 1, 1>(row_acc, x, rows, i);
      if (i < k_len) step<T, 1, 1>(row_acc, x, rows, i, T::tail_mask(k_len - i));
      return row_acc[0][0];
    };
    if (rows_in_turn<R>(k_len, w, acc[0], one_row)) return write_sums<R>(acc[0], y, bias, out);
  }

  int64_t i = 0;
  for (; i + T::kStep <= k_len; i += T::kStep) step<T, R, C>(acc, x, w, i);
  if (i < k_len) step<T, R, C>(acc, x, w, i, T::tail_mask(k_len - i));

#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) write_sums<R>(acc[c], y + c * ldy, bias, out);
}

// Exact bf16 decode on XForm::F32EvenOdd activations. A 64-byte load brings 32 bf16 weights of a
// row; as 16 32-bit lanes, the low half of lane j is element 2j and the high half element 2j + 1,
// so a 16-bit left shift gives the even elements as fp32 and clearing the low halves gives the odd
// ones: two cheap ALU ops per cache line where widening 16 elements at a time (vpmovzxwd) costs a
// shuffle per half line. Even and odd products go to separate accumulators (two FMAs chained on
// one accumulator measured slower); each is a plain fp32 FMA of the exact weight.
template <int R, class... Mask>
__attribute__((always_inline)) inline void even_odd_step(__m512 (&even)[R], __m512 (&odd)[R], const float* x,
                                                         const uint16_t* const (&w)[R], int64_t i, __m512i high,
                                                         Mask... mask) {
  const __m512 xe = _mm512_loadu_ps(x + i);  // x is zero-padded to whole blocks: no mask needed
  const __m512 xo = _mm512_loadu_ps(x + i + 16);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) _mm_prefetch((const char*)(w[r] + i) + kDecodePrefetchBytes, _MM_HINT_T0);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i raw = Bf16Weights::load_w(w[r] + i, mask...);
    even[r] = _mm512_fmadd_ps(xe, _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16)), even[r]);
    odd[r] = _mm512_fmadd_ps(xo, _mm512_castsi512_ps(_mm512_and_si512(raw, high)), odd[r]);
  }
}

// Sums of R rows side by side (sums[r] = even + odd sums of row r).
template <int R>
void even_odd_sums(const float* x, const uint16_t* const (&w)[R], int64_t k_len, __m512 (&sums)[R]) {
  __m512 even[R], odd[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    even[r] = _mm512_setzero_ps();
    odd[r] = _mm512_setzero_ps();
  }
  const __m512i high = _mm512_set1_epi32(int(0xffff0000u));
  int64_t i = 0;
  for (; i + 32 <= k_len; i += 32) even_odd_step<R>(even, odd, x, w, i, high);
  if (i < k_len) even_odd_step<R>(even, odd, x, w, i, high, Bf16Weights::tail_mask(k_len - i));
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) sums[r] = _mm512_add_ps(even[r], odd[r]);
}

// Rows in turn when short, as tile<T, R, 1>.
template <int R>
void decode_tile_even_odd(const void* xp, int64_t /*ldx*/, const void* wp, int64_t ldw, int64_t k_len, float* y,
                          int64_t /*ldy*/, const float* bias, TileOutput out) {
  const float* x = static_cast<const float*>(xp);
  const uint16_t* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = static_cast<const uint16_t*>(wp) + r * ldw;
  auto one_row = [&](const uint16_t* row) {
    const uint16_t* const rows[1] = {row};
    __m512 row_sum[1];
    even_odd_sums<1>(x, rows, k_len, row_sum);
    return row_sum[0];
  };
  __m512 sums[R];
  if (!rows_in_turn<R>(k_len, w, sums, one_row)) even_odd_sums<R>(x, w, k_len, sums);
  write_sums<R>(sums, y, bias, out);
}

// Exact bf16 for a few activation rows in decode order: C rows of XForm::F32EvenOdd activations
// (ldx apart) share each widened weight vector, and every row's even and odd sums are
// decode_tile_even_odd's, step for step. Against C one-row passes the weights are read and widened
// once instead of C times.
template <int R, int C, class... Mask>
__attribute__((always_inline)) inline void few_even_odd_step(__m512 (&even)[C][R], __m512 (&odd)[C][R],
                                                             const float* x, int64_t ldx,
                                                             const uint16_t* const (&w)[R], int64_t i,
                                                             __m512i high, Mask... mask) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) _mm_prefetch((const char*)(w[r] + i) + kDecodePrefetchBytes, _MM_HINT_T0);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i raw = Bf16Weights::load_w(w[r] + i, mask...);
    const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(raw, 16));
    const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(raw, high));
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      even[c][r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + c * ldx + i), we, even[c][r]);
      odd[c][r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + c * ldx + i + 16), wo, odd[c][r]);
    }
  }
}

template <int R, int C>
void few_tile_even_odd(const void* xp, int64_t ldx, const void* wp, int64_t ldw, int64_t k_len, float* y,
                       int64_t ldy, const float* bias, TileOutput out) {
  const float* x = static_cast<const float*>(xp);
  const uint16_t* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = static_cast<const uint16_t*>(wp) + r * ldw;
  __m512 even[C][R], odd[C][R];
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) even[c][r] = odd[c][r] = _mm512_setzero_ps();
  const __m512i high = _mm512_set1_epi32(int(0xffff0000u));
  int64_t i = 0;
  for (; i + 32 <= k_len; i += 32) few_even_odd_step<R, C>(even, odd, x, ldx, w, i, high);
  if (i < k_len) few_even_odd_step<R, C>(even, odd, x, ldx, w, i, high, Bf16Weights::tail_mask(k_len - i));
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    __m512 sums[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) sums[r] = _mm512_add_ps(even[c][r], odd[c][r]);
    write_sums<R>(sums, y + c * ldy, bias, out);
  }
}

// 4 weight rows x 3 activation rows: 24 accumulators, the widened pair and the raw weights.
constexpr int kFewEvenOddRows = 4;
constexpr int kFewEvenOddCols = 3;

// Tiles beyond 24 accumulators would spill registers; the driver never asks for them.
constexpr bool tile_needed(int rows, int cols) { return rows * cols <= 24 || cols == 1; }

template <class T, int... I>
constexpr KernelSet make_set(int rows, int cols, int decode_rows, std::integer_sequence<int, I...>) {
  constexpr XForm form = std::is_same_v<typename T::X, uint16_t> ? XForm::Bf16 : XForm::F32;
  // tile<T, R, C> sums each row in the same order whatever C: decode order as it is.
  KernelSet set{form, form, rows, cols, decode_rows, rows, cols, {}, {}, {}};
  auto fill = [&](auto index) {
    constexpr int r = decltype(index)::value / kMaxTileCols + 1;
    constexpr int c = decltype(index)::value % kMaxTileCols + 1;
    if constexpr (tile_needed(r, c)) set.tile[r - 1][c - 1] = set.few_tile[r - 1][c - 1] = &tile<T, r, c>;
    if constexpr (c == 1) set.decode_tile[r - 1] = &tile<T, r, 1>;
  };
  (fill(std::integral_constant<int, I>{}), ...);
  return set;
}

template <class T>
constexpr KernelSet make_set(int rows, int cols, int decode_rows) {
  return make_set<T>(rows, cols, decode_rows, std::make_integer_sequence<int, kMaxTileRows * kMaxTileCols>{});
}

// 6 weight rows x 4 activation rows: 24 accumulators + 6 weight vectors + 1 activation vector
// fit the 32 zmm registers, and each step does 24 multiply-adds for 10 loads.
constexpr KernelSet kF32Set = make_set<F32Weights>(6, 4, 8);
constexpr KernelSet kF16Set = make_set<F16Weights>(6, 4, 8);
constexpr KernelSet kBf16Set = make_set<Bf16Weights>(6, 4, 8);
constexpr KernelSet kBf16WidenSet = [] {
  KernelSet set = make_set<Bf16WidenWeights>(6, 4, 8);
  set.decode_x_form = XForm::F32EvenOdd;
  auto fill = [&]<int... I>(std::integer_sequence<int, I...>) {
    ((set.decode_tile[I] = &decode_tile_even_odd<I + 1>), ...);
  };
  fill(std::make_integer_sequence<int, kMaxTileRows>{});
  for (auto& row : set.few_tile)
    for (TileFn& fn : row) fn = nullptr;  // the widening tiles sum in another order
  set.few_rows = kFewEvenOddRows;
  set.few_cols = kFewEvenOddCols;
  auto fill_few = [&]<int... I>(std::integer_sequence<int, I...>) {
    ((set.few_tile[I / kFewEvenOddCols][I % kFewEvenOddCols] =
          &few_tile_even_odd<I / kFewEvenOddCols + 1, I % kFewEvenOddCols + 1>),
     ...);
  };
  fill_few(std::make_integer_sequence<int, kFewEvenOddRows * kFewEvenOddCols>{});
  return set;
}();

}  // namespace

const KernelSet* avx512_kernels(DType wtype, bool bf16_dot) {
  switch (wtype) {
    case DType::F32:
      return &kF32Set;
    case DType::F16:
      return &kF16Set;
    case DType::BF16:
      return bf16_dot ? &kBf16Set : &kBf16WidenSet;
    default:
      return nullptr;
  }
}

void round_rows_to_bf16_avx512(const float* x, int64_t rows, int64_t k, uint16_t* out, int64_t ld) {
  for (int64_t row = 0; row < rows; ++row) {
    const float* src = x + row * k;
    uint16_t* dst = out + row * ld;
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
      __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
      _mm512_storeu_si512(dst + i, (__m512i)v);
    }
    // Tail and padding together: masked-off lanes load as zero, which is also the padding value.
    for (; i < ld; i += 32) {
      int64_t left = k - i;
      __mmask16 lo = left <= 0 ? 0 : left >= 16 ? 0xffff : __mmask16((1u << left) - 1);
      __mmask16 hi = left <= 16 ? 0 : left >= 32 ? 0xffff : __mmask16((1u << (left - 16)) - 1);
      __m512bh v =
          _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, src + i + 16), _mm512_maskz_loadu_ps(lo, src + i));
      int64_t width = ld - i < 32 ? ld - i : 32;
      _mm512_mask_storeu_epi16(dst + i, __mmask32((uint64_t(1) << width) - 1), (__m512i)v);
    }
  }
}

void split_even_odd_avx512(const float* x, int64_t k, float* out) {
  const __m512i even_index = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd_index = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t i = 0; i < k; i += 32) {
    const int64_t left = k - i;
    const __mmask16 lo = left >= 16 ? 0xffff : __mmask16((1u << left) - 1);
    const __mmask16 hi = left <= 16 ? 0 : left >= 32 ? 0xffff : __mmask16((1u << (left - 16)) - 1);
    const __m512 a = _mm512_maskz_loadu_ps(lo, x + i), b = _mm512_maskz_loadu_ps(hi, x + i + 16);
    _mm512_storeu_ps(out + i, _mm512_permutex2var_ps(a, even_index, b));
    _mm512_storeu_ps(out + i + 16, _mm512_permutex2var_ps(a, odd_index, b));
  }
}

}  // namespace brisk::cpu::kernels
