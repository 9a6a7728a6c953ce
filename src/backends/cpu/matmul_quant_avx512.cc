// AVX-512 tiles for quantized weights (core/quant_blocks.h). Compiled with -mavx512f/bw/vl/dq/vnni
// (src/CMakeLists.txt); matmul_quant.cc only calls in after cpu_features() confirms the ISA.
//
// Float tiles: weight-only formats (Q8, F8, Q4, NF4, LOG4) dequantize each weight vector in
// registers once and multiply-add it into every activation row of the tile with fp32 FMAs, so
// results match the scalar reference up to summation order. They are arithmetic-bound at decode
// (a widen, a convert and an FMA per 16 weights).
// Integer tiles: the same weight-only formats against int8 activations (quantized per 32 values
// by the driver) with vpdpbusd, 64 multiply-adds per instruction: weight codes are the unsigned
// operand (Q8 codes + 128; 4-bit codes as they are, or their int8 codebook level + 128), so the
// offset comes off as offset * sum(activations): per row (Q8) or in each int32 lane (4-bit).
// Q8A8 multiplies u8 activations (per-token scale) by s8 weights into int32, scales at the end.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "backends/cpu/matmul_quant_kernels.h"
#include "core/quant_blocks.h"

// GCC 12's intrinsic headers trip its own -Wuninitialized (see matmul_avx512.cc).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace brisk::cpu::quant_kernels {

namespace {

// Decode streams every weight byte from DRAM once; prefetching ~512 B ahead of each weight row
// keeps more lines in flight than the hardware prefetcher alone (as in matmul_avx512.cc).
constexpr int kPrefetchBytes = 512;
// Decode tiles prefetch the next tile's block while the tile (R rows) is at most this many bytes,
// so the prefetched lines are still in L1 (48 KB) when that tile reaches them.
constexpr size_t kNextTilePrefetchMax = 32768;
// Interleaved weights (BlockOrder::Interleaved8) are one sequential stream per thread; a prefetch
// this far ahead of it gained 12-17% at k = 5632 and nothing at k = 2048 (notes item 24).
constexpr size_t kStreamPrefetchBytes = 1536;

// The R weight rows of a tile, ldw bytes apart.
template <class Block, int R>
[[gnu::always_inline]] inline void tile_rows(const void* wp, size_t ldw, const Block* (&w)[R]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = reinterpret_cast<const Block*>(static_cast<const uint8_t*>(wp) + r * ldw);
}

// Block b of a row that starts at `row` (the integer tiles' row-major or interleaved layouts).
template <class Block>
[[gnu::always_inline]] inline const Block& block_at(const uint8_t* row, int64_t b, size_t block_stride) {
  return *reinterpret_cast<const Block*>(row + size_t(b) * block_stride);
}

// Accumulators stay in registers only when these loops unroll early (bench/notes-cpu-matmul.md, 2).
template <class V, int C, int R>
[[gnu::always_inline]] inline void set_all(V (&acc)[C][R], V value) {
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[c][r] = value;
}

// Format policies for the fp32-activation tiles: a block is kSteps steps; a step yields kVecs
// vectors of 16 consecutive weights. State is what a block needs prepared once (the Q4 level
// table); row_scale is applied to the finished dot product (per-channel formats).
struct Q8Format {
  using Block = BlockQ8;
  static constexpr int kSteps = 16, kVecs = 1, kStepBytes = 16;
  using State = int;
  static State prepare(const Block&) { return 0; }
  static void load(const Block& b, int s, State, __m512 (&out)[kVecs]) {
    out[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(b.q + 16 * s))));
  }
  static float row_scale(const Block& b) { return b.scale; }
};

// e4m3 -> fp16 by moving bits: sign to bit 15, exponent and mantissa shifted left by 7. The fp16
// exponent bias is 8 more than e4m3's, so the fp16 value is the e4m3 value times 2^-8 (subnormals
// included: they land on fp16 subnormals); the 2^8 goes into the row scale. NaN codes never occur
// (the quantizer saturates). Three instructions per 16 codes: sign-extended to 16 bits and shifted
// left by 7, a code's sign lands on bits 14 and 15, so clearing bit 14 leaves the fp16 pattern.
struct F8Format {
  using Block = BlockF8;
  static constexpr int kSteps = 16, kVecs = 1, kStepBytes = 16;
  using State = int;
  static State prepare(const Block&) { return 0; }
  static void load(const Block& b, int s, State, __m512 (&out)[kVecs]) {
    const __m256i h = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(b.q + 16 * s)));
    const __m256i bits = _mm256_and_si256(_mm256_slli_epi16(h, 7), _mm256_set1_epi16(short(0xBF80)));
    out[0] = _mm512_cvtph_ps(bits);
  }
  static float row_scale(const Block& b) { return b.scale * 256.0f; }
};

// 4-bit codes: a 16-entry table of (level - zero) * scale per block, then each nibble vector is
// one permute (vpermps) away from its fp32 weights. kLevels null: integer levels 0..15.
template <const float* kLevels>
struct Nibble4Format {
  using Block = BlockQ4;
  static constexpr int kSteps = 4, kVecs = 2, kStepBytes = 16;
  using State = __m512;
  static State prepare(const Block& b) {
    __m512 levels = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    if constexpr (kLevels != nullptr) levels = _mm512_loadu_ps(kLevels);
    const __m512 scale = _mm512_cvtph_ps(_mm256_set1_epi16(short(b.scale_f16)));
    return _mm512_mul_ps(_mm512_sub_ps(levels, _mm512_set1_ps(float(b.zero))), scale);
  }
  static void load(const Block& b, int s, State table, __m512 (&out)[kVecs]) {
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(b.q + 16 * s)));
    out[0] = _mm512_permutexvar_ps(_mm512_and_si512(v, _mm512_set1_epi32(0xf)), table);
    out[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
  }
  static float row_scale(const Block&) { return 1.0f; }
};
constexpr const float* kIntegerLevels = nullptr;

template <class F, int R, int C>
void float_tile(const void* xp, int64_t ldx, const float*, const void* wp, size_t ldw, int64_t n_blocks,
                float* y, int64_t ldy, const float* bias) {
  using Block = typename F::Block;
  constexpr int64_t kBlockValues = F::kSteps * F::kVecs * 16;
  const float* x = static_cast<const float*>(xp);
  const Block* w[R];
  tile_rows(wp, ldw, w);
  __m512 acc[C][R];
  set_all(acc, _mm512_setzero_ps());

  for (int64_t b = 0; b < n_blocks; ++b) {
    typename F::State state[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) state[r] = F::prepare(w[r][b]);
    const float* xb = x + b * kBlockValues;
#pragma GCC unroll 16
    for (int s = 0; s < F::kSteps; ++s) {
      __m512 wv[R][F::kVecs];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        if ((s * F::kStepBytes) % 64 == 0)
          _mm_prefetch(reinterpret_cast<const char*>(&w[r][b]) + s * F::kStepBytes + kPrefetchBytes, _MM_HINT_T0);
        F::load(w[r][b], s, state[r], wv[r]);
      }
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c)
#pragma GCC unroll 2
        for (int v = 0; v < F::kVecs; ++v) {
          const __m512 xv = _mm512_loadu_ps(xb + c * ldx + (s * F::kVecs + v) * 16);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) acc[c][r] = _mm512_fmadd_ps(xv, wv[r][v], acc[c][r]);
        }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const float scale = n_blocks > 0 ? F::row_scale(w[r][0]) : 0.0f;
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      y[c * ldy + r] = _mm512_reduce_add_ps(acc[c][r]) * scale + (bias ? bias[r] : 0.0f);
  }
}

// w8a8: x holds u8 = code + 128, so sum(u8 * w) = sum(code * w) + 128 * sum(w); the block sums
// remove the second term exactly in int32. |sum| <= 255 * 127 * k fits int32 for k < 66,000.
template <int R, int C>
void int8_tile(const void* xp, int64_t ldx, const float* x_scales, const void* wp, size_t ldw, int64_t n_blocks,
               float* y, int64_t ldy, const float* bias) {
  const uint8_t* x = static_cast<const uint8_t*>(xp);
  const BlockQ8A8* w[R];
  tile_rows(wp, ldw, w);
  __m512i acc[C][R];
  int32_t row_sum[R] = {};
  set_all(acc, _mm512_setzero_si512());
  for (int64_t b = 0; b < n_blocks; ++b) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) row_sum[r] += w[r][b].sum;
#pragma GCC unroll 4
    for (int s = 0; s < 4; ++s) {
      __m512i wv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(w[r][b].q + 64 * s) + kPrefetchBytes, _MM_HINT_T0);
        wv[r] = _mm512_loadu_si512(w[r][b].q + 64 * s);
      }
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        const __m512i xv = _mm512_loadu_si512(x + c * ldx + b * 256 + 64 * s);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[c][r] = _mm512_dpbusd_epi32(acc[c][r], xv, wv[r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const float w_scale = n_blocks > 0 ? w[r][0].scale : 0.0f;
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const int32_t dot = _mm512_reduce_add_epi32(acc[c][r]) - 128 * row_sum[r];
      y[c * ldy + r] = float(dot) * (x_scales[c] * w_scale) + (bias ? bias[r] : 0.0f);
    }
  }
}

template <class Set, template <int, int> class Tile, int... I>
constexpr Set make_set(std::integer_sequence<int, I...>) {
  Set set{};
  ((set.tile[I / kTileCols][I % kTileCols] = Tile<I / kTileCols + 1, I % kTileCols + 1>::run), ...);
  return set;
}
template <template <int, int> class Tile, class Set = QuantKernelSet>
constexpr Set make_set() {
  return make_set<Set, Tile>(std::make_integer_sequence<int, kTileRows * kTileCols>{});
}

template <class F>
struct FloatTiles {
  template <int R, int C>
  struct Tile {
    static constexpr QuantTileFn run = &float_tile<F, R, C>;
  };
};
template <int R, int C>
struct Int8Tile {
  static constexpr QuantTileFn run = &int8_tile<R, C>;
};

constexpr QuantKernelSet kQ8Set = make_set<FloatTiles<Q8Format>::Tile>();
constexpr QuantKernelSet kF8Set = make_set<FloatTiles<F8Format>::Tile>();
constexpr QuantKernelSet kQ4Set = make_set<FloatTiles<Nibble4Format<kIntegerLevels>>::Tile>();
constexpr QuantKernelSet kNf4Set = make_set<FloatTiles<Nibble4Format<kNf4Levels>>::Tile>();
constexpr QuantKernelSet kLog4Set = make_set<FloatTiles<Nibble4Format<kLog4Levels>>::Tile>();
constexpr QuantKernelSet kQ8A8Set = make_set<Int8Tile>();

// ---- integer tiles (int8 activations) ----

inline __m512 lane_dot(__m512i w, __m512i x) {
  return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x));
}

// Per-channel int8 (BlockQ8): a group is 64 consecutive codes, made unsigned by flipping the sign
// bit (code + 128); every group's lane dots go straight into fp32 accumulators with the lanes'
// activation scales, and the 128 * sum(x) the offset adds comes off once per row (row_sums).
template <int R, int C>
void q8_tile(const Int8Rows& x, const void* wp, size_t ldw, size_t block_stride, int64_t n_blocks, float* y,
             int64_t ldy, const float* bias) {
  constexpr int kGroups = 4;
  constexpr int64_t kBlockValues = kGroups * kGroupValues;
  const uint8_t* w[R];
  tile_rows(wp, ldw, w);
  const size_t prefetch_offset = block_stride == sizeof(BlockQ8) ? kPrefetchBytes : kStreamPrefetchBytes;
  __m512 acc[C][R];
  set_all(acc, _mm512_setzero_ps());

  for (int64_t b = 0; b < n_blocks; ++b) {
    const int8_t* xb = x.codes + b * kBlockValues;
    const float* sb = x.lane_scales + b * kBlockValues / 4;
    if constexpr (C == 1) {
      // Decode walks each row's block front to back, row after row: ascending addresses, which
      // the stream prefetchers follow (group-major order jumps 260 bytes at a time). Each
      // accumulator still sums its groups in order, so the sums are the same.
      __m512i xv[kGroups];
      __m512 sv[kGroups];
#pragma GCC unroll 4
      for (int g = 0; g < kGroups; ++g) {
        xv[g] = _mm512_loadu_si512(xb + kGroupValues * g);
        sv[g] = _mm512_loadu_ps(sb + kGroupValues / 4 * g);
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const BlockQ8& block = block_at<BlockQ8>(w[r], b, block_stride);
#pragma GCC unroll 4
        for (int g = 0; g < kGroups; ++g) {
          _mm_prefetch(reinterpret_cast<const char*>(&block) + kGroupValues * g + prefetch_offset, _MM_HINT_T0);
          const __m512i wv =
              _mm512_xor_si512(_mm512_loadu_si512(block.q + kGroupValues * g), _mm512_set1_epi8(char(0x80)));
          acc[0][r] = _mm512_fmadd_ps(lane_dot(wv, xv[g]), sv[g], acc[0][r]);
        }
      }
      continue;
    }
#pragma GCC unroll 4
    for (int g = 0; g < kGroups; ++g) {
      __m512i wv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const BlockQ8& block = block_at<BlockQ8>(w[r], b, block_stride);
        _mm_prefetch(reinterpret_cast<const char*>(&block) + kGroupValues * g + prefetch_offset, _MM_HINT_T0);
        wv[r] = _mm512_xor_si512(_mm512_loadu_si512(block.q + kGroupValues * g), _mm512_set1_epi8(char(0x80)));
      }
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) {
        const __m512i xv = _mm512_loadu_si512(xb + c * x.ld + kGroupValues * g);
        const __m512 sv = _mm512_loadu_ps(sb + c * x.ld / 4 + kGroupValues / 4 * g);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[c][r] = _mm512_fmadd_ps(lane_dot(wv[r], xv), sv, acc[c][r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const float scale = n_blocks > 0 ? block_at<BlockQ8>(w[r], 0, block_stride).scale : 0.0f;
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c)
      y[c * ldy + r] = (_mm512_reduce_add_ps(acc[c][r]) - 128.0f * x.row_sums[c]) * scale + (bias ? bias[r] : 0.0f);
  }
}

// BlockQ4 (Q4, NF4, LOG4): one 64-byte load holds a block's 128 codes. Activations come in
// nibble order (kNibbleOrder): the low nibbles meet the group's first 64 codes, the high
// nibbles the next 64, and a lane of either vector covers the same activation block, so both
// vpdpbusd go into one int32 accumulator. That accumulator starts at -zero * sum(lane's codes)
// (one vpmaddwd; Q4's zero point from the block header, the codebooks' +128 offset once per
// block), so a block costs each row one convert and one FMA with (lane scales * block scale).
template <DType kType>
struct Nibble4Codes {
  static constexpr bool kCodebook = kType != DType::Q4;
  static __m512i table() {
    if constexpr (!kCodebook) return _mm512_setzero_si512();
    const __m128i levels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(int8_codebook(kType)->level));
    return _mm512_broadcast_i32x4(_mm_xor_si128(levels, _mm_set1_epi8(char(0x80))));
  }
  static float unit() { return kCodebook ? int8_codebook(kType)->unit : 1.0f; }
  static void codes(const BlockQ4& b, __m512i table, __m512i& lo, __m512i& hi) {
    const __m512i v = _mm512_loadu_si512(b.q);
    const __m512i nibble = _mm512_set1_epi8(0x0f);
    lo = _mm512_and_si512(v, nibble);
    hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
    if constexpr (kCodebook) {
      lo = _mm512_shuffle_epi8(table, lo);
      hi = _mm512_shuffle_epi8(table, hi);
    }
  }
  // Every int32 lane: the block's zero point in its high int16 (vpmaddwd's factor for lane_sums).
  static __m512i zero_high(const BlockQ4& b) {
    if constexpr (kCodebook) return _mm512_set1_epi32(128 << 16);
    uint32_t header;
    std::memcpy(&header, &b, sizeof(header));
    return _mm512_and_si512(_mm512_set1_epi32(int(header)), _mm512_set1_epi32(0x00ff0000));
  }
};

template <class F, int R, int C>
void nibble4_tile(const Int8Rows& x, const void* wp, size_t ldw, size_t block_stride, int64_t n_blocks, float* y,
                  int64_t ldy, const float* bias) {
  const uint8_t* w[R];
  tile_rows(wp, ldw, w);
  const __m512i table = F::table();
  const int64_t lanes_ld = x.ld / kMaxGroupValues * kLanesPerGroup;
  // Row-major: a tile's rows are one contiguous run of R * ldw bytes and the next decode tile
  // follows it. Short rows (k = 2048: 1,088 bytes) end before a fixed distance ahead pays off,
  // so at decode each block prefetches the same block of the next tile instead, while that stays
  // within L1.
  const size_t prefetch_offset = block_stride != sizeof(BlockQ4)                  ? kStreamPrefetchBytes
                                 : C == 1 && R * ldw <= kNextTilePrefetchMax ? R * ldw
                                                                              : size_t(kPrefetchBytes);
  __m512 acc[C][R];
  set_all(acc, _mm512_setzero_ps());

  for (int64_t b = 0; b < n_blocks; ++b) {
    __m512i lo[R], hi[R], zero[R];
    __m512 scale[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const BlockQ4& block = block_at<BlockQ4>(w[r], b, block_stride);
      _mm_prefetch(reinterpret_cast<const char*>(&block) + prefetch_offset, _MM_HINT_T0);
      F::codes(block, table, lo[r], hi[r]);
      zero[r] = F::zero_high(block);
      scale[r] = _mm512_cvtph_ps(_mm256_set1_epi16(short(block.scale_f16)));
    }
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      const int8_t* xb = x.codes + c * x.ld + b * kMaxGroupValues;
      const __m512i xlo = _mm512_loadu_si512(xb), xhi = _mm512_loadu_si512(xb + kGroupValues);
      const __m512 lane_scale = _mm512_loadu_ps(x.lane_scales + c * lanes_ld + b * kLanesPerGroup);
      const __m512i lane_sum = _mm512_loadu_si512(x.lane_sums + c * lanes_ld + b * kLanesPerGroup);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        __m512i dot = _mm512_madd_epi16(zero[r], lane_sum);
        dot = _mm512_dpbusd_epi32(dot, lo[r], xlo);
        dot = _mm512_dpbusd_epi32(dot, hi[r], xhi);
        acc[c][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(lane_scale, scale[r]), acc[c][r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) y[c * ldy + r] = _mm512_reduce_add_ps(acc[c][r]) + (bias ? bias[r] : 0.0f);
}

// Where an activation block's codes go. Natural (Q8): in place. Nibble (4-bit): per group of
// 128 values (a BlockQ4), the first 16 values of every 32 meet the low nibbles (bytes 0..63 of
// the group's codes), the last 16 the high nibbles (bytes 64..127); see BlockQ4's chunk layout.
enum class CodeOrder : uint8_t { Natural, Nibble };

// One activation row as the integer tiles read it. Codes: quantize_activation_blocks' numerics
// (absmax / 127 per 32 values, the same float product, round to nearest even). Lane scales: the
// activation scale of every int32 lane times `unit`. Lane sums: -(lane's code sum) << 16.
template <CodeOrder kOrder>
void prepare_int8_row(const float* x, int64_t k, int64_t padded_k, float unit, int8_t* codes, float* lane_scales,
                      int32_t* lane_sums, float* row_sum) {
  constexpr int64_t kGroup = kOrder == CodeOrder::Nibble ? kMaxGroupValues : kGroupValues;
  constexpr int64_t kLanesPerBlock = kLanesPerGroup * kActivationBlock / kGroup;
  static_assert(kActivationBlock == 32, "two 16-value halves per activation block");
  float total = 0.0f;
  for (int64_t b0 = 0; b0 < padded_k; b0 += kActivationBlock) {
    const int64_t len = std::clamp<int64_t>(k - b0, 0, kActivationBlock);
    const __mmask16 m0 = __mmask16(len >= 16 ? 0xffff : (1u << len) - 1);
    const __mmask16 m1 = __mmask16(len >= 32 ? 0xffff : len > 16 ? (1u << (len - 16)) - 1 : 0);
    const __m512 a = _mm512_maskz_loadu_ps(m0, x + b0), b = _mm512_maskz_loadu_ps(m1, x + b0 + 16);
    const float absmax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
    const __m512 inv = _mm512_set1_ps(absmax > 0.0f ? 127.0f / absmax : 0.0f);
    const __m512i qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, inv)), qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, inv));
    const float scale = absmax / 127.0f;
    const int64_t group0 = b0 / kGroup * kGroup, in_group = b0 % kGroup;
    int8_t* first = codes + b0;
    int8_t* second = codes + b0 + 16;
    if constexpr (kOrder == CodeOrder::Nibble) {
      first = codes + group0 + in_group / 2;
      second = first + kGroupValues;
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(first), _mm512_cvtsepi32_epi8(qa));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(second), _mm512_cvtsepi32_epi8(qb));
    float* lanes = lane_scales + group0 / kGroup * kLanesPerGroup + in_group / kActivationBlock * kLanesPerBlock;
    for (int64_t l = 0; l < kLanesPerBlock; ++l) lanes[l] = scale * unit;
    total += float(_mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb))) * scale;
  }
  *row_sum = total;
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t g = 0; g < padded_k; g += kGroup) {
    __m512i sum = _mm512_setzero_si512();
    for (int64_t v = 0; v < kGroup; v += kGroupValues)
      sum = _mm512_dpbusd_epi32(sum, ones, _mm512_loadu_si512(codes + g + v));
    _mm512_storeu_si512(lane_sums + g / kGroup * kLanesPerGroup,
                        _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), sum), 16));
  }
}

template <CodeOrder kOrder, DType kType>
void prepare_row_for(const float* x, int64_t k, int64_t padded_k, int8_t* codes, float* lane_scales,
                     int32_t* lane_sums, float* row_sum) {
  const float unit = kOrder == CodeOrder::Nibble ? Nibble4Codes<kType>::unit() : 1.0f;
  prepare_int8_row<kOrder>(x, k, padded_k, unit, codes, lane_scales, lane_sums, row_sum);
}

template <CodeOrder kOrder, DType kType>
constexpr Int8KernelSet with_order(Int8KernelSet set) {
  set.group = kOrder == CodeOrder::Nibble ? kMaxGroupValues : kGroupValues;
  if constexpr (kOrder == CodeOrder::Nibble)
    set.decode_tile = &nibble4_tile<Nibble4Codes<kType>, kDecodeRows, 1>;
  else
    set.decode_tile = &q8_tile<kDecodeRows, 1>;
  set.prepare_row = &prepare_row_for<kOrder, kType>;
  return set;
}

template <int R, int C>
struct Q8Tile {
  static constexpr Int8TileFn run = &q8_tile<R, C>;
};
template <DType kType>
struct Nibble4Tiles {
  template <int R, int C>
  struct Tile {
    static constexpr Int8TileFn run = &nibble4_tile<Nibble4Codes<kType>, R, C>;
  };
};

constexpr Int8KernelSet kQ8Int8Set = with_order<CodeOrder::Natural, DType::Q8>(make_set<Q8Tile, Int8KernelSet>());
template <DType kType>
constexpr Int8KernelSet kNibble4Int8Set =
    with_order<CodeOrder::Nibble, kType>(make_set<Nibble4Tiles<kType>::template Tile, Int8KernelSet>());

}  // namespace

const QuantKernelSet* avx512_quant_kernels(DType wtype) {
  switch (wtype) {
    case DType::Q8: return &kQ8Set;
    case DType::Q8A8: return &kQ8A8Set;
    case DType::F8: return &kF8Set;
    case DType::Q4: return &kQ4Set;
    case DType::NF4: return &kNf4Set;
    case DType::LOG4: return &kLog4Set;
    default: return nullptr;
  }
}

const Int8KernelSet* avx512_vnni_int8_kernels(DType wtype) {
  switch (wtype) {
    case DType::Q8: return &kQ8Int8Set;
    case DType::Q4: return &kNibble4Int8Set<DType::Q4>;
    case DType::NF4: return &kNibble4Int8Set<DType::NF4>;
    case DType::LOG4: return &kNibble4Int8Set<DType::LOG4>;
    default: return nullptr;
  }
}

}  // namespace brisk::cpu::quant_kernels
