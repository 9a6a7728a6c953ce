#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backends/cpu/vector_math.h"
#include "core/dtype.h"

namespace brisk::cpu {

namespace {

constexpr int64_t kDirectScoreQueries = 8;  // up to this many queries per unit take attend_few

// Each unit is a block of query vectors (rows x heads of one GQA group) against all their keys,
// in two passes over the cache: scores and a causal softmax, then the values weighted into the
// outputs. Nothing is ever [T, T] beyond one block's scores.
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

// Row `offset` of a pool as fp32: the pool itself when it is fp32, else converted into `scratch`.
template <class T>
__attribute__((always_inline)) inline const float* load_row(const T* pool, const float* scales,
                                                            int64_t offset, int64_t head_dim,
                                                            float* scratch) {
  if constexpr (std::is_same_v<T, float>) {
    return pool + offset;
  } else {
    row_to_f32(pool + offset, scales ? scales[offset / head_dim] : 1.0f, head_dim, scratch);
    return scratch;
  }
}

typedef float v8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline float sum_lanes(v16 x) {
  const v8 h = __builtin_shufflevector(x, x, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15);
  float s = 0.0f;
  for (int l = 0; l < 8; ++l) s += h[l];
  return s;
}

// Few queries (decode: one row's GQA group): scores straight from each key row as it lies, 16
// elements per FMA and one horizontal sum per query and key (sotu-llama at 512-768 keys: this
// pass sampled nearly as often as the decode matmuls while it transposed key blocks; notes item
// 26). Scores live in `scores` [n_queries, n_keys_max]. Needs head_dim % 16 == 0.
template <class T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_few(
    const float* const* q, float* const* out, const int64_t* n_keys, int64_t n_queries, int64_t n_keys_max,
    const Pools<T>& pools, KeyRows key_row, int64_t head_dim, float scale, float* scores,
    float* row_scratch) {
  for (int64_t j = 0; j < n_keys_max; ++j) {
    const float* kj = load_row(pools.k, pools.k_scales, key_row(j), head_dim, row_scratch);
    for (int64_t a = 0; a < n_queries; ++a) {
      v16 acc = {};
      for (int64_t i = 0; i < head_dim; i += kLanes) {
        v16 qv, kv;
        std::memcpy(&qv, q[a] + i, sizeof(v16));
        std::memcpy(&kv, kj + i, sizeof(v16));
        acc += qv * kv;
      }
      scores[a * n_keys_max + j] = sum_lanes(acc);
    }
  }
  // Softmax per query over its own (causal) keys; later keys get weight 0.
  for (int64_t a = 0; a < n_queries; ++a) {
    float* s = scores + a * n_keys_max;
    float max_score = -INFINITY;
    for (int64_t j = 0; j < n_keys[a]; ++j) max_score = std::max(max_score, s[j] *= scale);
    float sum = 0;
    for (int64_t j = 0; j < n_keys[a]; ++j) sum += (s[j] = std::exp(s[j] - max_score));
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n_keys[a]; ++j) s[j] *= inv;
    for (int64_t j = n_keys[a]; j < n_keys_max; ++j) s[j] = 0.0f;
    std::fill(out[a], out[a] + head_dim, 0.0f);
  }
  // outputs += p * v, one value row at a time (converted once for the whole group). Explicit
  // vectors: the compiler cannot prove that out and the cache do not overlap.
  for (int64_t j = 0; j < n_keys_max; ++j) {
    const float* vj = load_row(pools.v, pools.v_scales, key_row(j), head_dim, row_scratch);
    for (int64_t a = 0; a < n_queries; ++a) {
      const float p = scores[a * n_keys_max + j];
      float* o = out[a];
      for (int64_t i = 0; i < head_dim; i += kLanes) {
        v16 ov, vv;
        std::memcpy(&ov, o + i, sizeof(v16));
        std::memcpy(&vv, vj + i, sizeof(v16));
        ov += p * vv;
        std::memcpy(o + i, &ov, sizeof(v16));
      }
    }
  }
}

// Where attend_many works: every array is the caller's, sized for this block.
struct ManyScratch {
  float* q_transposed;   // [head_dim][width]: query a's element i at i * width + a; padding lanes 0
  float* probs;          // [n_keys_max + kKeyBlock][width]: scores, then softmax numerators
  float* out_block;      // [width][padded_dim]
  float* rows;           // [2][n_keys_max][padded_dim]: converted key and value rows, when needed
  const float** k_rows;  // [n_keys_max + kKeyBlock]
  const float** v_rows;  // [n_keys_max]
  float* inv_sum;        // [width]
};

constexpr int64_t kKeyBlock = 4;      // keys per score step
constexpr int64_t kValueQueries = 8;  // queries per value step

// Scores of 16 * NV queries against kKeyBlock keys: one broadcast key element feeds NV FMAs.
// The step functions unroll their constant loops early (pragmas), or GCC keeps the accumulators
// in memory (as the matmul tiles did, notes item 2).
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
      const v16 s = acc[b][n] * scale;
      std::memcpy(probs + b * width + n * kLanes, &s, sizeof(v16));
    }
}

// kValueQueries queries x 16 * NV output elements over all keys: one broadcast probability feeds
// NV FMAs.
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
    for (int64_t a = 0; a < kValueQueries; ++a)
#pragma GCC unroll 8
      for (int n = 0; n < NV; ++n) acc[a][n] += p[a] * vv[n];
  }
#pragma GCC unroll 8
  for (int64_t a = 0; a < kValueQueries; ++a)
#pragma GCC unroll 8
    for (int n = 0; n < NV; ++n)
      std::memcpy(out_block + a * padded_dim + dim + n * kLanes, &acc[a][n], sizeof(v16));
}

// Many queries (prefill): the block's queries are transposed once, padded to whole vectors of 16
// (`width`), so a score step is a broadcast key element times 16 queries, and scores are stored
// key-major: the softmax then runs on 16 queries per vector (a vector exp instead of one libm call
// per score) and the value pass broadcasts one probability per query into 16 output elements,
// with outputs held in registers across all keys. Rows of a non-fp32 pool, or of a head_dim that
// is no multiple of 16, are converted into padded fp32 rows once per block.
template <class T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_many(
    const float* const* q, float* const* out, const int64_t* n_keys, int64_t n_queries, int64_t n_keys_max,
    const Pools<T>& pools, KeyRows key_row, int64_t head_dim, float scale, const ManyScratch& s) {
  const int64_t width = (n_queries + kLanes - 1) / kLanes * kLanes;
  const int64_t padded_dim = (head_dim + kLanes - 1) / kLanes * kLanes;
  const bool convert = !std::is_same_v<T, float> || padded_dim != head_dim;
  for (int64_t j = 0; j < n_keys_max; ++j) {
    const int64_t at = key_row(j);
    if (!convert) {
      s.k_rows[j] = reinterpret_cast<const float*>(pools.k + at);
      s.v_rows[j] = reinterpret_cast<const float*>(pools.v + at);
      continue;
    }
    float* k_row = s.rows + j * padded_dim;
    float* v_row = s.rows + (n_keys_max + j) * padded_dim;
    row_to_f32(pools.k + at, pools.k_scales ? pools.k_scales[at / head_dim] : 1.0f, head_dim, k_row);
    row_to_f32(pools.v + at, pools.v_scales ? pools.v_scales[at / head_dim] : 1.0f, head_dim, v_row);
    std::fill(v_row + head_dim, v_row + padded_dim, 0.0f);
    s.k_rows[j] = k_row;
    s.v_rows[j] = v_row;
  }
  for (int64_t j = n_keys_max; j < n_keys_max + kKeyBlock; ++j) s.k_rows[j] = s.k_rows[n_keys_max - 1];
  for (int64_t i = 0; i < head_dim; ++i)
    for (int64_t a = 0; a < width; ++a) s.q_transposed[i * width + a] = a < n_queries ? q[a][i] : 0.0f;

  for (int64_t a = 0; a < width; a += 2 * kLanes) {
    const bool pair = a + kLanes < width;
    for (int64_t j = 0; j < n_keys_max; j += kKeyBlock) {
      if (pair)
        score_step<2>(s.q_transposed + a, width, s.k_rows + j, head_dim, scale, s.probs + j * width + a);
      else
        score_step<1>(s.q_transposed + a, width, s.k_rows + j, head_dim, scale, s.probs + j * width + a);
    }
  }
  // Causal softmax, 16 queries per vector: keys past a query's own count get weight 0. Padding
  // lanes count every key (their scores are 0), so no lane divides by zero.
  for (int64_t a = 0; a < width; a += kLanes) {
    v16 limit, max_score = {};
    for (int64_t l = 0; l < kLanes; ++l) limit[l] = float(a + l < n_queries ? n_keys[a + l] : n_keys_max);
    max_score -= INFINITY;
    for (int64_t j = 0; j < n_keys_max; ++j) {
      v16 x;
      std::memcpy(&x, s.probs + j * width + a, sizeof(v16));
      const v16 key = v16{} + float(j);
      max_score = key < limit && x > max_score ? x : max_score;
    }
    v16 sum = {};
    for (int64_t j = 0; j < n_keys_max; ++j) {
      float* at = s.probs + j * width + a;
      v16 x;
      std::memcpy(&x, at, sizeof(v16));
      const v16 key = v16{} + float(j);
      v16 p = x - max_score;
      exp_nonpositive(p);
      p = key < limit ? p : v16{};
      sum += p;
      std::memcpy(at, &p, sizeof(v16));
    }
    for (int64_t l = 0; l < kLanes; ++l) s.inv_sum[a + l] = 1.0f / sum[l];
  }
  for (int64_t a = 0; a < width; a += kValueQueries)
    for (int64_t d = 0; d < padded_dim; d += 2 * kLanes) {
      float* block = s.out_block + a * padded_dim;
      if (d + kLanes < padded_dim)
        value_step<2>(s.probs + a, width, s.v_rows, n_keys_max, d, block, padded_dim);
      else
        value_step<1>(s.probs + a, width, s.v_rows, n_keys_max, d, block, padded_dim);
    }
  for (int64_t a = 0; a < n_queries; ++a)
    for (int64_t i = 0; i < head_dim; ++i) out[a][i] = s.out_block[a * padded_dim + i] * s.inv_sum[a];
}

}  // namespace

namespace {

// Queries per prefill unit: rows x GQA group near two vectors of 16 (attend_many pads to whole
// vectors). Decode rows are units of one row.
constexpr int64_t kUnitQueries = 32;

template <class T>
void attention_over(const float* q, const Pools<T>& pools, float* out, const AttentionBatch& batch,
                    int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, ThreadPool& pool) {
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
    for (int32_t r = 0; r < span.n_rows; r += unit_rows)
      units.push_back({int32_t(s), r, std::min(span.n_rows, r + unit_rows)});
  }
  const int64_t n_units = int64_t(units.size()) * n_kv_heads;
  const int n_threads = pool.size();
  const Unit* unit_list = units.data();
  pool.run_on_all([&](int t) {
    // Per-thread scratch, grown once and reused by every later call.
    thread_local std::vector<float> scores, row_scratch, q_transposed, out_block, inv_sum;
    thread_local std::vector<const float*> q_rows, k_rows, v_rows;
    thread_local std::vector<float*> out_rows;
    thread_local std::vector<int64_t> n_keys;
    for (int64_t u = t; u < n_units; u += n_threads) {
      const Unit& unit = unit_list[u / n_kv_heads];
      const int64_t kvh = u % n_kv_heads;
      const SequenceSpan& span = batch.host_seqs[unit.seq];
      const int64_t n_queries = (unit.end_row - unit.first_row) * group;
      const int64_t n_keys_max = span.first_pos + unit.end_row;  // the block's last row sees the most keys
      q_rows.resize(size_t(n_queries));
      out_rows.resize(size_t(n_queries));
      n_keys.resize(size_t(n_queries));
      for (int64_t i = unit.first_row; i < unit.end_row; ++i)
        for (int64_t g = 0; g < group; ++g) {
          const size_t a = size_t((i - unit.first_row) * group + g);
          const int64_t head = kvh * group + g, r = span.first_row + i;
          q_rows[a] = q + r * q_stride + head * head_dim;
          out_rows[a] = out + r * q_stride + head * head_dim;
          n_keys[a] = span.first_pos + i + 1;
        }
      const KeyRows key_row{batch.host_block_tables + span.table_offset, batch.block_size, kv_stride,
                            kvh * head_dim};
      if (n_queries <= kDirectScoreQueries && head_dim % kLanes == 0) {
        scores.resize(size_t(n_queries * n_keys_max));
        row_scratch.resize(size_t(head_dim));
        attend_few(q_rows.data(), out_rows.data(), n_keys.data(), n_queries, n_keys_max, pools, key_row,
                   head_dim, scale, scores.data(), row_scratch.data());
        continue;
      }
      const int64_t width = (n_queries + kLanes - 1) / kLanes * kLanes;
      const int64_t padded_dim = (head_dim + kLanes - 1) / kLanes * kLanes;
      q_transposed.resize(size_t(head_dim * width));
      scores.resize(size_t((n_keys_max + kKeyBlock) * width));
      out_block.resize(size_t(width * padded_dim));
      row_scratch.resize(size_t(2 * n_keys_max * padded_dim));
      k_rows.resize(size_t(n_keys_max + kKeyBlock));
      v_rows.resize(size_t(n_keys_max));
      inv_sum.resize(size_t(width));
      const ManyScratch scratch{q_transposed.data(), scores.data(), out_block.data(), row_scratch.data(),
                                k_rows.data(),       v_rows.data(), inv_sum.data()};
      attend_many(q_rows.data(), out_rows.data(), n_keys.data(), n_queries, n_keys_max, pools, key_row,
                  head_dim, scale, scratch);
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
               float scale, ThreadPool& pool) {
  const int64_t n_kv = kv.n_kv_heads, hd = kv.head_dim;
  switch (kv.dtype) {
    case KvDtype::F32:
      return attention_over(q, pools_of<float>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
    case KvDtype::BF16:
      return attention_over(q, pools_of<Bf16>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
    case KvDtype::I8:
      return attention_over(q, pools_of<int8_t>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
    case KvDtype::F8:
      return attention_over(q, pools_of<E4m3>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
  }
}

}  // namespace brisk::cpu
