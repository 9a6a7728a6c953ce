#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_budgets.h"
#include "backends/cpu/attention_bf16.h"
#include "backends/cpu/vector_math.h"
#include "core/cpu_features.h"
#include "core/dtype.h"

namespace brisk::cpu {

namespace {

constexpr int64_t kDirectScoreQueries = 8;  // up to this many queries per unit take attend_few

// Key position p of one sequence and kv head -> offset of its row in the pool.
struct KeyRows {
  const int32_t* table;
  int64_t block_size, kv_stride, head_offset;
  int64_t operator()(int64_t p) const {
    return (int64_t(table[p / block_size]) * block_size + p % block_size) * kv_stride + head_offset;
  }
};

// Pool element types: each converts a run of stored values to fp32 (scale folded in) with GCC
// vectors, which every target clone below lowers to its own ISA (one zmm op per 16 values on
// AVX-512).
typedef uint16_t u16x16 __attribute__((vector_size(32)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef int8_t i8x16 __attribute__((vector_size(16)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));

struct Bf16 {
  uint16_t bits;
};
struct E4m3 {
  uint8_t bits;
};

__attribute__((always_inline)) inline float scalar_to_f32(float x) { return x; }
__attribute__((always_inline)) inline float scalar_to_f32(Bf16 x) { return bf16_to_f32(x.bits); }
__attribute__((always_inline)) inline float scalar_to_f32(int8_t x) { return float(x); }
__attribute__((always_inline)) inline float scalar_to_f32(E4m3 x) { return e4m3_to_f32(x.bits); }

// 16 stored values -> dst[0..16) as fp32 times scale (stores, not returns: a 64-byte vector
// return value would change the ABI of the non-AVX-512 clones).
__attribute__((always_inline)) inline void vector_to_f32(const float* src, float scale, float* dst) {
  v16 x;
  std::memcpy(&x, src, sizeof(x));
  x *= scale;
  std::memcpy(dst, &x, sizeof(x));
}
__attribute__((always_inline)) inline void vector_to_f32(const Bf16* src, float scale, float* dst) {
  u16x16 h;
  std::memcpy(&h, src, sizeof(h));
  const v16 x = (v16)(__builtin_convertvector(h, u32x16) << 16) * scale;  // bf16: the top half of an fp32
  std::memcpy(dst, &x, sizeof(x));
}
__attribute__((always_inline)) inline void vector_to_f32(const int8_t* src, float scale, float* dst) {
  i8x16 c;
  std::memcpy(&c, src, sizeof(c));
  const v16 x = __builtin_convertvector(c, v16) * scale;
  std::memcpy(dst, &x, sizeof(x));
}
// e4m3 -> fp32 by moving bits: sign to bit 31, exponent and mantissa to bits 20..26. The fp32
// pattern is the e4m3 value times 2^-120 (e4m3 subnormals land on fp32 subnormals, still exact),
// so one multiply finishes it. 0x7f (NaN) is never stored: codes saturate at 448.
__attribute__((always_inline)) inline void vector_to_f32(const E4m3* src, float scale, float* dst) {
  u8x16 b;
  std::memcpy(&b, src, sizeof(b));
  const u32x16 w = __builtin_convertvector(b, u32x16);
  const v16 x =
      (v16)(((w & 0x80u) << 24) | ((w & 0x7fu) << 20)) * 0x1p120f * scale;  // 2^120 * scale may overflow
  std::memcpy(dst, &x, sizeof(x));
}

// One head row of a non-fp32 pool as fp32 values times `scale`.
template <class T>
__attribute__((always_inline)) inline void row_to_f32(const T* src, float scale, int64_t n, float* dst) {
  const int64_t full = n / kLanes * kLanes;
  for (int64_t i = 0; i < full; i += kLanes) vector_to_f32(src + i, scale, dst + i);
  for (int64_t i = full; i < n; ++i) dst[i] = scalar_to_f32(src[i]) * scale;
}

// Where a block's keys and values are: the pools (elements of T) and, for int8/fp8, the scale of
// each (slot, kv head) row, indexed by a row's element offset / head_dim.
template <class T>
struct Pools {
  const T* k;
  const T* v;
  const float* k_scales;
  const float* v_scales;
};

// Where a unit works: every array is the caller's, grown once per thread and reused.
struct Scratch {
  float* q_transposed;   // attend_many: [head_dim][width], query a's element i at i * width + a
  float* probs;          // scores, then softmax numerators (attend_many key-major, attend_few query-major)
  float* out_block;      // [queries][padded_dim]: unnormalized outputs
  float* rows;           // [2][n_keys_max][padded_dim]: converted key and value rows, when needed
  const float** k_rows;  // [n_keys_max + padding]: the last row repeats into the padding
  const float** v_rows;  // [n_keys_max]
  float* inv_sum;        // [queries]: 1 / softmax denominator
  uint32_t* bf16_pairs;  // attend_many with bf16 dot products: attention_bf16::scratch_words
};


// Whether a unit reads converted copies of its rows: unless the pool is fp32 and head_dim a
// multiple of 16 (whole vectors), the kernels read padded fp32 rows.
template <class T>
constexpr bool converts_rows(int64_t head_dim) {
  return !std::is_same_v<T, float> || head_dim % kLanes != 0;
}

// Points k_rows / v_rows at each key's fp32 row: the pool itself, or rows converted once per unit
// (converts_rows: scale folded in, zero-padded to padded_dim so the passes read whole vectors).
template <class T>
__attribute__((always_inline)) inline void gather_rows(const Pools<T>& pools, KeyRows key_row, int64_t n_keys,
                                                       int64_t n_padded_keys, int64_t head_dim,
                                                       const Scratch& s) {
  const int64_t padded_dim = round_up(head_dim, kLanes);
  for (int64_t j = 0; j < n_keys; ++j) {
    const int64_t at = key_row(j);
    if (!converts_rows<T>(head_dim)) {
      s.k_rows[j] = reinterpret_cast<const float*>(pools.k + at);
      s.v_rows[j] = reinterpret_cast<const float*>(pools.v + at);
      continue;
    }
    float* k_row = s.rows + j * padded_dim;
    float* v_row = s.rows + (n_keys + j) * padded_dim;
    row_to_f32(pools.k + at, pools.k_scales ? pools.k_scales[at / head_dim] : 1.0f, head_dim, k_row);
    row_to_f32(pools.v + at, pools.v_scales ? pools.v_scales[at / head_dim] : 1.0f, head_dim, v_row);
    std::fill(k_row + head_dim, k_row + padded_dim, 0.0f);
    std::fill(v_row + head_dim, v_row + padded_dim, 0.0f);
    s.k_rows[j] = k_row;
    s.v_rows[j] = v_row;
  }
  for (int64_t j = n_keys; j < n_padded_keys; ++j) s.k_rows[j] = s.k_rows[n_keys - 1];
}

// out[a] = out_block[a] / (its softmax denominator).
__attribute__((always_inline)) inline void write_outputs(float* const* out, int64_t n_queries,
                                                         int64_t head_dim, const Scratch& s) {
  const int64_t padded_dim = round_up(head_dim, kLanes), full = head_dim / kLanes * kLanes;
  for (int64_t a = 0; a < n_queries; ++a) {
    const float* from = s.out_block + a * padded_dim;
    for (int64_t i = 0; i < full; i += kLanes) {  // explicit vectors: out[a] might alias the block
      v16 o;
      std::memcpy(&o, from + i, sizeof(v16));
      o *= s.inv_sum[a];
      std::memcpy(out[a] + i, &o, sizeof(v16));
    }
    for (int64_t i = full; i < head_dim; ++i) out[a][i] = from[i] * s.inv_sum[a];
  }
}

// Decode reads the cache from memory, one strided head row per key: the hardware prefetchers do
// not run far enough ahead of rows 512 B apart (sotu-llama: the value loads took most of
// attend_few's samples), so rows are requested this many keys ahead.
constexpr int64_t kPrefetchKeys = 8;

__attribute__((always_inline)) inline void prefetch_row(const float* row, int64_t head_dim) {
  for (int64_t i = 0; i < head_dim; i += 16) __builtin_prefetch(row + i);
}

// sums[l] = the sum of x[l]'s lanes, for 16 vectors at once: each level adds the halves of two
// vectors' partial sums into one vector (8 + 4 + 2 + 1 shuffle-add pairs instead of 16 separate
// horizontal sums).
__attribute__((always_inline)) inline void sum_lanes_16(v16 (&x)[16], float* sums) {
  v16 h[8], g[4], f[2];
#pragma GCC unroll 8
  for (int m = 0; m < 8; ++m)
    h[m] = __builtin_shufflevector(x[2 * m], x[2 * m + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22,
                                   23) +
           __builtin_shufflevector(x[2 * m], x[2 * m + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28,
                                   29, 30, 31);
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m)
    g[m] = __builtin_shufflevector(h[2 * m], h[2 * m + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25,
                                   26, 27) +
           __builtin_shufflevector(h[2 * m], h[2 * m + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29,
                                   30, 31);
#pragma GCC unroll 2
  for (int m = 0; m < 2; ++m)
    f[m] = __builtin_shufflevector(g[2 * m], g[2 * m + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25,
                                   28, 29) +
           __builtin_shufflevector(g[2 * m], g[2 * m + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27,
                                   30, 31);
  const v16 e =
      __builtin_shufflevector(f[0], f[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
      __builtin_shufflevector(f[0], f[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  std::memcpy(sums, &e, sizeof(v16));
}

// Few queries (decode: one row's GQA group): scores straight from the key rows as they lie, 16
// keys at a time (one FMA per 16 elements per key, then one reduction tree for the 16 sums), so
// no transpose of keys or queries. Scores are query-major ([n_queries][n_keys_max rounded up to
// 16]); the softmax runs 16 keys per vector. sotu-llama at 512-768 keys: this pass sampled
// nearly as often as the decode matmuls while it transposed key blocks (notes items 26, 29).
// Needs head_dim % 16 == 0.
template <class T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_few(
    const float* const* q, float* const* out, const int64_t* first_key, const int64_t* n_keys, int64_t n_queries,
    int64_t n_keys_max, const Pools<T>& pools, KeyRows key_row, int64_t head_dim, const AttentionParams& params,
    const Scratch& s) {
  const float scale = params.scale;
  const int64_t stride = round_up(n_keys_max, kLanes);
  gather_rows(pools, key_row, n_keys_max, stride, head_dim, s);
  for (int64_t j0 = 0; j0 < n_keys_max; j0 += kLanes) {
    const float* const* k = s.k_rows + j0;
    for (int64_t b = kLanes; b < 2 * kLanes && j0 + b < n_keys_max; ++b) prefetch_row(k[b], head_dim);
    for (int64_t a = 0; a < n_queries; ++a) {
      v16 acc[kLanes] = {};
      for (int64_t i = 0; i < head_dim; i += kLanes) {
        v16 qv;
        std::memcpy(&qv, q[a] + i, sizeof(v16));
#pragma GCC unroll 16
        for (int b = 0; b < kLanes; ++b) {
          v16 kv;
          std::memcpy(&kv, k[b] + i, sizeof(v16));
          acc[b] += qv * kv;
        }
      }
      sum_lanes_16(acc, s.probs + a * stride + j0);
    }
  }
  // Causal softmax per query, 16 keys per vector: keys outside the query's [first, count) get
  // weight 0.
  for (int64_t a = 0; a < n_queries; ++a) {
    float* row = s.probs + a * stride;
    const v16 limit = v16{} + float(n_keys[a]), lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const v16 lower = v16{} + float(first_key[a]);
    const v16 minus_inf = v16{} - INFINITY;
    v16 max_score = minus_inf;
    for (int64_t j = 0; j < stride; j += kLanes) {
      v16 x;
      std::memcpy(&x, row + j, sizeof(v16));
      x *= scale;
      if (params.softcap > 0) soft_cap(x, params.softcap);
      std::memcpy(row + j, &x, sizeof(v16));
      x = lane + float(j) < limit ? x : minus_inf;  // no && on vectors: GCC splits it into lanes
      x = lane + float(j) >= lower ? x : minus_inf;
      max_score = x > max_score ? x : max_score;
    }
    float m = max_score[0];
    for (int l = 1; l < kLanes; ++l) m = std::max(m, max_score[l]);
    v16 sum = {};
    for (int64_t j = 0; j < stride; j += kLanes) {
      v16 p;
      std::memcpy(&p, row + j, sizeof(v16));
      p -= m;
      exp_nonpositive(p);
      p = lane + float(j) < limit ? p : v16{};
      p = lane + float(j) >= lower ? p : v16{};
      sum += p;
      std::memcpy(row + j, &p, sizeof(v16));
    }
    float total = 0;
    for (int l = 0; l < kLanes; ++l) total += sum[l];
    s.inv_sum[a] = 1.0f / total;
  }
  // Values in one pass over the keys, each row loaded once for all queries (the outputs stay in
  // L1): decode reads the cache from memory, so a pass per query group would cost more than the
  // output loads and stores it saves (notes item 29).
  float* const out_block = s.out_block;  // locals: the stores below could alias s's fields
  const float* const probs = s.probs;
  const float* const* const v_rows = s.v_rows;
  std::fill(out_block, out_block + n_queries * head_dim, 0.0f);
  for (int64_t j = 0; j < n_keys_max; ++j) {
    if (j + kPrefetchKeys < n_keys_max) prefetch_row(v_rows[j + kPrefetchKeys], head_dim);
    for (int64_t i = 0; i < head_dim; i += kLanes) {
      v16 vv;
      std::memcpy(&vv, v_rows[j] + i, sizeof(v16));
      for (int64_t a = 0; a < n_queries; ++a) {
        float* o = out_block + a * head_dim + i;
        v16 ov;
        std::memcpy(&ov, o, sizeof(v16));
        ov += probs[a * stride + j] * vv;
        std::memcpy(o, &ov, sizeof(v16));
      }
    }
  }
  write_outputs(out, n_queries, head_dim, s);
}

constexpr int64_t kKeyBlock = 4;  // keys per score step of attend_many

// The step functions unroll their constant loops early (pragmas), or GCC keeps the accumulators
// in memory (as the matmul tiles did, notes item 2).

// Scores of 16 * NV queries against kKeyBlock keys: one broadcast key element feeds NV FMAs.
template <int NV>
__attribute__((always_inline)) inline void score_step(const float* qt, int64_t width, const float* const* k,
                                                      int64_t head_dim, float scale, float* probs) {
  v16 acc[kKeyBlock][NV] = {};
  for (int64_t i = 0; i < head_dim; ++i) {
    v16 qv[NV];
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) std::memcpy(&qv[n], qt + i * width + n * kLanes, sizeof(v16));
#pragma GCC unroll 8
    for (int64_t b = 0; b < kKeyBlock; ++b)
#pragma GCC unroll 8
      for (int n = 0; n < NV; ++n) acc[b][n] += k[b][i] * qv[n];
  }
#pragma GCC unroll 8
  for (int64_t b = 0; b < kKeyBlock; ++b)
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) {
      const v16 sc = acc[b][n] * scale;
      std::memcpy(probs + b * width + n * kLanes, &sc, sizeof(v16));
    }
}

constexpr int64_t kValueQueries = 8;  // queries per value step of attend_many

// kValueQueries queries x 16 * NV output elements over all keys, outputs in registers: per key,
// NV value vectors and one broadcast probability per query (probs key-major, `width` apart).
template <int NV>
__attribute__((always_inline)) inline void value_step(const float* probs, int64_t width,
                                                      const float* const* v, int64_t n_keys, int64_t dim,
                                                      float* out_block, int64_t padded_dim) {
  v16 acc[kValueQueries][NV] = {};
  for (int64_t j = 0; j < n_keys; ++j) {
    v16 vv[NV];
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n) std::memcpy(&vv[n], v[j] + dim + n * kLanes, sizeof(v16));
    const float* p = probs + j * width;
#pragma GCC unroll 8
    for (int a = 0; a < kValueQueries; ++a)
#pragma GCC unroll 8
      for (int n = 0; n < NV; ++n) acc[a][n] += p[a] * vv[n];
  }
#pragma GCC unroll 8
  for (int a = 0; a < kValueQueries; ++a)
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n)
      std::memcpy(out_block + a * padded_dim + dim + n * kLanes, &acc[a][n], sizeof(v16));
}

// attend_many's score pass in fp32: the queries transposed into s.q_transposed, then 32 (or an
// odd last 16) queries x kKeyBlock keys per step.
__attribute__((always_inline)) inline void scores_fp32(const float* const* q, int64_t n_queries,
                                                       int64_t width, int64_t n_keys, int64_t head_dim,
                                                       float scale, const Scratch& s) {
  for (int64_t i = 0; i < head_dim; ++i)
    for (int64_t a = 0; a < width; ++a) s.q_transposed[i * width + a] = a < n_queries ? q[a][i] : 0.0f;
  for (int64_t a = 0; a < width; a += 2 * kLanes)
    for (int64_t j = 0; j < n_keys; j += kKeyBlock) {
      if (a + kLanes < width)
        score_step<2>(s.q_transposed + a, width, s.k_rows + j, head_dim, scale, s.probs + j * width + a);
      else
        score_step<1>(s.q_transposed + a, width, s.k_rows + j, head_dim, scale, s.probs + j * width + a);
    }
}

// attend_many's value pass in fp32: kValueQueries queries x 32 output elements (16 for an odd
// last vector) per step.
__attribute__((always_inline)) inline void values_fp32(int64_t width, int64_t n_keys, int64_t padded_dim,
                                                       const Scratch& s) {
  for (int64_t a = 0; a < width; a += kValueQueries)
    for (int64_t d = 0; d < padded_dim; d += 2 * kLanes) {
      float* block = s.out_block + a * padded_dim;
      if (d + kLanes < padded_dim)
        value_step<2>(s.probs + a, width, s.v_rows, n_keys, d, block, padded_dim);
      else
        value_step<1>(s.probs + a, width, s.v_rows, n_keys, d, block, padded_dim);
    }
}

// Many queries (prefill): the unit's queries are transposed once, padded to whole vectors of 16
// (`width`), so a score step is a broadcast key element times 16 queries, and scores are stored
// key-major: the softmax then runs on 16 queries per vector and the value pass broadcasts one
// probability per query into 16 output elements, with outputs held in registers across all keys
// (notes item 27).
// With bf16 dot products (k_pairs / v_pairs non-null: the sequence's keys and values as
// attention_bf16 pairs, converted once per call) the cache rows are not read here.
template <class T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_many(
    const float* const* q, float* const* out, const int64_t* first_key, const int64_t* n_keys, int64_t n_queries,
    int64_t n_keys_max, const Pools<T>& pools, KeyRows key_row, int64_t head_dim, const AttentionParams& params,
    const uint32_t* k_pairs, const uint32_t* v_pairs, const Scratch& s) {
  const float scale = params.scale;
  const int64_t width = round_up(n_queries, kLanes);
  if (k_pairs) {
    attention_bf16::scores(q, n_queries, width, k_pairs, n_keys_max, head_dim, scale, s.bf16_pairs, s.probs);
  } else {
    gather_rows(pools, key_row, n_keys_max, n_keys_max + kKeyBlock, head_dim, s);
    scores_fp32(q, n_queries, width, n_keys_max, head_dim, scale, s);
  }
  if (params.softcap > 0)
    for (int64_t j = 0; j < n_keys_max; ++j)
      for (int64_t a = 0; a < width; a += kLanes) {
        v16 x;
        std::memcpy(&x, s.probs + j * width + a, sizeof(v16));
        soft_cap(x, params.softcap);
        std::memcpy(s.probs + j * width + a, &x, sizeof(v16));
      }
  // Causal softmax, 16 queries per vector: keys outside a query's [first, count) get weight 0.
  // Padding lanes count every key (their scores are 0), so no lane divides by zero.
  for (int64_t a = 0; a < width; a += kLanes) {
    const v16 minus_inf = v16{} - INFINITY;
    v16 limit, lower, max_score = minus_inf;
    for (int64_t l = 0; l < kLanes; ++l) {
      limit[l] = float(a + l < n_queries ? n_keys[a + l] : n_keys_max);
      lower[l] = float(a + l < n_queries ? first_key[a + l] : 0);
    }
    for (int64_t j = 0; j < n_keys_max; ++j) {
      v16 x;
      std::memcpy(&x, s.probs + j * width + a, sizeof(v16));
      x = float(j) < limit ? x : minus_inf;  // no && on vectors: GCC splits it into lanes
      x = float(j) >= lower ? x : minus_inf;
      max_score = x > max_score ? x : max_score;
    }
    v16 sum = {};
    for (int64_t j = 0; j < n_keys_max; ++j) {
      float* at = s.probs + j * width + a;
      v16 p;
      std::memcpy(&p, at, sizeof(v16));
      p -= max_score;
      exp_nonpositive(p);
      p = float(j) < limit ? p : v16{};
      p = float(j) >= lower ? p : v16{};
      sum += p;
      std::memcpy(at, &p, sizeof(v16));
    }
    for (int64_t l = 0; l < kLanes; ++l) s.inv_sum[a + l] = 1.0f / sum[l];
  }
  const int64_t padded_dim = round_up(head_dim, kLanes);
  if (v_pairs)
    attention_bf16::values(s.probs, width, v_pairs, n_keys_max, padded_dim, s.bf16_pairs, s.out_block);
  else
    values_fp32(width, n_keys_max, padded_dim, s);
  write_outputs(out, n_queries, head_dim, s);
}

}  // namespace

namespace {

// A unit takes attend_few when head_dim is whole vectors and it has few queries, or belongs to a
// sequence of at most kDecodeOrderRows rows in this call: attend_few treats each query alone
// (its sums do not depend on the unit's other queries or on how many keys the unit spans), so
// such rows attend exactly as one-row decode steps do (ops/backend.h). attend_many's blocked sums
// would not.
bool takes_attend_few(int64_t sequence_rows, int64_t n_queries, int64_t head_dim) {
  return head_dim % kLanes == 0 && (n_queries <= kDirectScoreQueries || sequence_rows <= kDecodeOrderRows);
}

// With bf16 dot products, attend_many reads keys and values as bf16 pairs. Each sequence's are
// converted here once per kv head, in a job before the units', rather than by every unit (17
// units of a 512-token prompt converted the same keys). pair_at[seq * n_kv_heads + kvh] is the
// offset of its key pairs in kv_pairs, value pairs right after; -1 where no unit needs them (a
// sequence's units have at most unit_rows rows of `group` queries).
template <class T>
void pair_keys_and_values(const Pools<T>& pools, const AttentionBatch& batch, int64_t n_kv_heads, int64_t head_dim,
                          int64_t unit_rows, int64_t group, ThreadPool& pool, std::vector<int64_t>& pair_at,
                          std::vector<uint32_t>& kv_pairs) {
  const int64_t padded_dim = round_up(head_dim, kLanes), kv_stride = n_kv_heads * head_dim;
  pair_at.assign(size_t(batch.n_seqs * n_kv_heads), -1);
  int64_t words = 0;
  for (int64_t s = 0; s < batch.n_seqs; ++s) {
    const SequenceSpan& span = batch.host_seqs[s];
    if (span.n_rows == 0 || takes_attend_few(span.n_rows, std::min<int64_t>(span.n_rows, unit_rows) * group, head_dim))
      continue;
    const int64_t n_keys = span.first_pos + span.n_rows;
    for (int64_t kvh = 0; kvh < n_kv_heads; ++kvh) {
      pair_at[size_t(s * n_kv_heads + kvh)] = words;
      words += attention_bf16::key_pair_words(n_keys, head_dim) +
               attention_bf16::value_pair_words(n_keys, padded_dim);
    }
  }
  kv_pairs.resize(size_t(words));
  if (words == 0) return;
  const int n_threads = pool.size();
  pool.run_on_all([&](int t) {
    thread_local std::vector<float> rows;
    thread_local std::vector<const float*> k_rows, v_rows;
    for (int64_t u = t; u < batch.n_seqs * n_kv_heads; u += n_threads) {
      if (pair_at[size_t(u)] < 0) continue;
      const SequenceSpan& span = batch.host_seqs[u / n_kv_heads];
      const int64_t kvh = u % n_kv_heads, n_keys = span.first_pos + span.n_rows;
      const KeyRows key_row{batch.host_block_tables + span.table_offset, batch.block_size, kv_stride,
                            kvh * head_dim};
      rows.resize(converts_rows<T>(head_dim) ? size_t(2 * n_keys * padded_dim) : 0);
      k_rows.resize(size_t(n_keys));
      v_rows.resize(size_t(n_keys));
      const Scratch rows_only{nullptr,       nullptr,       nullptr, rows.data(),
                              k_rows.data(), v_rows.data(), nullptr, nullptr};
      gather_rows(pools, key_row, n_keys, n_keys, head_dim, rows_only);
      uint32_t* k_pairs = kv_pairs.data() + pair_at[size_t(u)];
      attention_bf16::keys_to_pairs(k_rows.data(), n_keys, head_dim, k_pairs);
      attention_bf16::values_to_pairs(v_rows.data(), n_keys, padded_dim,
                                      k_pairs + attention_bf16::key_pair_words(n_keys, head_dim));
    }
  });
}

// Each unit is a block of query vectors (rows x heads of one GQA group) against all their keys,
// in two passes over the cache: scores and a causal softmax, then the values weighted into the
// outputs. Nothing is ever [T, T] beyond one block's scores.
//
// Queries per prefill unit: rows x GQA group near two vectors of 16 (attend_many pads to whole
// vectors). Decode rows are units of one row.
constexpr int64_t kUnitQueries = 32;

template <class T>
void attention_over(const float* q, const Pools<T>& pools, float* out, const AttentionBatch& batch,
                    int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, const AttentionParams& params,
                    Bf16Math math, ThreadPool& pool) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_stride = n_kv_heads * head_dim;
  const int64_t q_stride = n_heads * head_dim;
  const int32_t unit_rows = int32_t(std::max<int64_t>(1, kUnitQueries / group));
  // Units are (sequence, row block, kv head); a unit list keeps threads balanced whatever the mix
  // of long prefills and single decode rows.
  struct Unit {
    int32_t seq, first_row, end_row;
  };
  thread_local std::vector<Unit> units;
  units.clear();
  for (int64_t s = 0; s < batch.n_seqs; ++s) {
    const SequenceSpan& span = batch.host_seqs[s];
    // Rows shared evenly: a short last unit would fall to attend_few with all the keys.
    const int32_t count = (span.n_rows + unit_rows - 1) / unit_rows;
    for (int32_t i = 0; i < count; ++i)
      units.push_back({int32_t(s), span.n_rows * i / count, span.n_rows * (i + 1) / count});
  }
  const int64_t n_units = int64_t(units.size()) * n_kv_heads;
  const int n_threads = pool.size();
  const Unit* unit_list = units.data();
  const int64_t padded_dim = round_up(head_dim, kLanes);
  thread_local std::vector<int64_t> pair_at_store;
  thread_local std::vector<uint32_t> kv_pairs_store;
  std::vector<int64_t>& pair_at = pair_at_store;  // the workers see the caller's through these
  std::vector<uint32_t>& kv_pairs = kv_pairs_store;
  if (math == Bf16Math::Dot)
    pair_keys_and_values(pools, batch, n_kv_heads, head_dim, unit_rows, group, pool, pair_at, kv_pairs);
  else
    pair_at.assign(size_t(batch.n_seqs * n_kv_heads), -1);

  pool.run_on_all([&](int t) {
    // Per-thread scratch, grown once and reused by every later call.
    thread_local std::vector<float> probs, rows, q_transposed, out_block, inv_sum;
    thread_local std::vector<const float*> q_rows, k_rows, v_rows;
    thread_local std::vector<float*> out_rows;
    thread_local std::vector<int64_t> n_keys, first_key;
    thread_local std::vector<uint32_t> bf16_pairs;
    for (int64_t u = t; u < n_units; u += n_threads) {
      const Unit& unit = unit_list[u / n_kv_heads];
      const int64_t kvh = u % n_kv_heads;
      const SequenceSpan& span = batch.host_seqs[unit.seq];
      const int64_t n_queries = (unit.end_row - unit.first_row) * group;
      // The block's last row sees the most keys (every row sees all of them when bidirectional).
      const int64_t n_keys_max = params.end_key(span.first_pos + unit.end_row - 1, span.first_pos + span.n_rows);
      q_rows.resize(size_t(n_queries));
      out_rows.resize(size_t(n_queries));
      n_keys.resize(size_t(n_queries));
      first_key.resize(size_t(n_queries));
      for (int64_t i = unit.first_row; i < unit.end_row; ++i)
        for (int64_t g = 0; g < group; ++g) {
          const size_t a = size_t((i - unit.first_row) * group + g);
          const int64_t head = kvh * group + g, r = span.first_row + i;
          q_rows[a] = q + r * q_stride + head * head_dim;
          out_rows[a] = out + r * q_stride + head * head_dim;
          n_keys[a] = params.end_key(span.first_pos + i, span.first_pos + span.n_rows);
          first_key[a] = params.first_key(span.first_pos + i);
        }
      const KeyRows key_row{batch.host_block_tables + span.table_offset, batch.block_size, kv_stride,
                            kvh * head_dim};
      const bool few = takes_attend_few(span.n_rows, n_queries, head_dim);
      const int64_t width = round_up(n_queries, kLanes);
      const int64_t padded_keys = round_up(n_keys_max, kLanes) + kKeyBlock;
      q_transposed.resize(few ? 0 : size_t(head_dim * width));
      probs.resize(size_t(padded_keys * width));
      out_block.resize(size_t(width * padded_dim));
      rows.resize(converts_rows<T>(head_dim) ? size_t(2 * n_keys_max * padded_dim) : 0);
      k_rows.resize(size_t(padded_keys));
      v_rows.resize(size_t(n_keys_max));
      inv_sum.resize(size_t(width));
      const int64_t at = pair_at[size_t(unit.seq * n_kv_heads + kvh)];
      const bool bf16 = !few && at >= 0;
      bf16_pairs.resize(bf16 ? size_t(attention_bf16::scratch_words(n_keys_max, width, head_dim)) : 0);
      const Scratch scratch{q_transposed.data(), probs.data(),  out_block.data(), rows.data(),
                            k_rows.data(),       v_rows.data(), inv_sum.data(),   bf16_pairs.data()};
      if (few) {
        attend_few(q_rows.data(), out_rows.data(), first_key.data(), n_keys.data(), n_queries, n_keys_max, pools,
                   key_row, head_dim, params, scratch);
      } else {
        const uint32_t* k_pairs = bf16 ? kv_pairs.data() + at : nullptr;
        const int64_t seq_keys = span.first_pos + span.n_rows;
        const uint32_t* v_pairs =
            bf16 ? k_pairs + attention_bf16::key_pair_words(seq_keys, head_dim) : nullptr;
        attend_many(q_rows.data(), out_rows.data(), first_key.data(), n_keys.data(), n_queries, n_keys_max, pools,
                    key_row, head_dim, params, k_pairs, v_pairs, scratch);
      }
    }
  });
}

template <class T>
Pools<T> pools_of(const KvPools& kv) {
  const bool scaled = kv_has_scales(kv.dtype);  // other dtypes may leave stale pointers there
  return {static_cast<const T*>(kv.k), static_cast<const T*>(kv.v), scaled ? kv.k_scales : nullptr,
          scaled ? kv.v_scales : nullptr};
}

}  // namespace

void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch, int64_t n_heads,
               const AttentionParams& params, Bf16Math math, ThreadPool& pool) {
  const int64_t n_kv = kv.n_kv_heads, hd = kv.head_dim;
  if (!cpu_features().avx512bf16) math = Bf16Math::Exact;
  switch (kv.dtype) {
    case KvDtype::F32:
      return attention_over(q, pools_of<float>(kv), out, batch, n_heads, n_kv, hd, params, math, pool);
    case KvDtype::BF16:
      return attention_over(q, pools_of<Bf16>(kv), out, batch, n_heads, n_kv, hd, params, math, pool);
    case KvDtype::I8:
      return attention_over(q, pools_of<int8_t>(kv), out, batch, n_heads, n_kv, hd, params, math, pool);
    case KvDtype::F8:
      return attention_over(q, pools_of<E4m3>(kv), out, batch, n_heads, n_kv, hd, params, math, pool);
  }
}

}  // namespace brisk::cpu
