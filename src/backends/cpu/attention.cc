#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"

namespace brisk::cpu {

namespace {

// 16 fp32 lanes as a GCC vector: one zmm on AVX-512, two ymm on AVX2 (each target clone below
// lowers it for its own ISA).
typedef float v16 __attribute__((vector_size(64)));
constexpr int kLanes = 16;
constexpr int kRowBlock = 4;  // query rows handled together: keys/values are reused across them
constexpr int64_t kDirectScoreQueries = 8;  // up to this many queries, scores skip the key transpose

// A block of query vectors (rows x heads of one GQA group) against all their keys, in two passes
// over the cache: scores for 16 keys at a time from a transposed key block (so each q element is
// one broadcast FMA into 16 lanes), a causal softmax per query, then the values weighted into the
// outputs, each value row loaded once for the whole block. Scores live in `scores`
// [n_queries, n_keys_max]; nothing is ever [T, T] beyond the block.
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

__attribute__((always_inline)) inline float scalar_to_f32(Bf16 x) { return bf16_to_f32(x.bits); }
__attribute__((always_inline)) inline float scalar_to_f32(int8_t x) { return float(x); }
__attribute__((always_inline)) inline float scalar_to_f32(E4m3 x) { return e4m3_to_f32(x.bits); }

// 16 stored values -> dst[0..16) as fp32 times scale (stores, not returns: a 64-byte vector
// return value would change the ABI of the non-AVX-512 clones).
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
  const v16 x = (v16)(((w & 0x80u) << 24) | ((w & 0x7fu) << 20)) * 0x1p120f * scale;  // 2^120 * scale may overflow
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
__attribute__((always_inline)) inline const float* load_row(const T* pool, const float* scales, int64_t offset,
                                                             int64_t head_dim, float* scratch) {
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

template <class T>
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_block(
    const float* const* q, float* const* out, const int64_t* n_keys, int64_t n_queries, int64_t n_keys_max,
    const Pools<T>& pools, KeyRows key_row, int64_t head_dim, float scale, float* scores, float* k_transposed,
    float* row_scratch) {
  // Pass 1: scores. Few queries (decode: one row's GQA group) take each key row as it lies, 16
  // elements per FMA and one horizontal sum per query; transposing a key block (below) costs 2
  // scalar moves per key element, which only many queries repay (sotu-llama at 512-768 keys:
  // attention sampled nearly as often as the decode matmuls; notes item 26).
  const bool direct = n_queries <= kDirectScoreQueries && head_dim % kLanes == 0;
  if (direct) {
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
  }
  // k_transposed holds [head_dim][16] of the current key block.
  for (int64_t j0 = 0; j0 < n_keys_max && !direct; j0 += kLanes) {
    const int64_t width = std::min<int64_t>(kLanes, n_keys_max - j0);
    for (int64_t jj = 0; jj < kLanes; ++jj) {
      const float* kj = load_row(pools.k, pools.k_scales, key_row(j0 + std::min(jj, width - 1)), head_dim,
                                 row_scratch);
      for (int64_t i = 0; i < head_dim; ++i) k_transposed[i * kLanes + jj] = kj[i];
    }
    for (int64_t a = 0; a < n_queries; ++a) {
      v16 acc = {};
      const float* qa = q[a];
      for (int64_t i = 0; i < head_dim; ++i) {
        v16 kt;
        std::memcpy(&kt, k_transposed + i * kLanes, sizeof(v16));
        acc += qa[i] * kt;
      }
      std::memcpy(scores + a * n_keys_max + j0, &acc, size_t(width) * sizeof(float));
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
  // Pass 2: outputs += p * v, one value row at a time (converted once for the whole block).
  // Explicit vectors: the compiler cannot prove that out and the cache do not overlap, and would
  // otherwise stay scalar.
  const int64_t full = head_dim / kLanes * kLanes;
  for (int64_t j = 0; j < n_keys_max; ++j) {
    const float* vj = load_row(pools.v, pools.v_scales, key_row(j), head_dim, row_scratch);
    for (int64_t a = 0; a < n_queries; ++a) {
      const float p = scores[a * n_keys_max + j];
      float* o = out[a];
      for (int64_t i = 0; i < full; i += kLanes) {
        v16 ov, vv;
        std::memcpy(&ov, o + i, sizeof(v16));
        std::memcpy(&vv, vj + i, sizeof(v16));
        ov += p * vv;
        std::memcpy(o + i, &ov, sizeof(v16));
      }
      for (int64_t i = full; i < head_dim; ++i) o[i] += p * vj[i];
    }
  }
}

}  // namespace

namespace {

template <class T>
void attention_over(const float* q, const Pools<T>& pools, float* out, const AttentionBatch& batch,
                    int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, ThreadPool& pool) {
  const int64_t group = n_heads / n_kv_heads;
  const int64_t kv_stride = n_kv_heads * head_dim;
  const int64_t q_stride = n_heads * head_dim;
  // Units are (sequence, row block, kv head); a unit list keeps threads balanced whatever the mix
  // of long prefills and single decode rows.
  struct Unit {
    int32_t seq, first_row, end_row;
  };
  thread_local std::vector<Unit> units;
  units.clear();
  for (int64_t s = 0; s < batch.n_seqs; ++s) {
    const SequenceSpan& span = batch.host_seqs[s];
    for (int32_t r = 0; r < span.n_rows; r += kRowBlock)
      units.push_back({int32_t(s), r, std::min(span.n_rows, r + int32_t(kRowBlock))});
  }
  const int64_t n_units = int64_t(units.size()) * n_kv_heads;
  const int n_threads = pool.size();
  const Unit* unit_list = units.data();
  pool.run_on_all([&](int t) {
    // Per-thread scratch, grown once and reused by every later call.
    thread_local std::vector<float> scores, k_transposed, row_scratch;
    thread_local std::vector<const float*> q_rows;
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
      scores.resize(size_t(n_queries * (n_keys_max + kLanes)));
      k_transposed.resize(size_t(head_dim * kLanes));
      row_scratch.resize(size_t(head_dim));
      const KeyRows key_row{batch.host_block_tables + span.table_offset, batch.block_size, kv_stride,
                            kvh * head_dim};
      attend_block(q_rows.data(), out_rows.data(), n_keys.data(), n_queries, n_keys_max, pools, key_row,
                   head_dim, scale, scores.data(), k_transposed.data(), row_scratch.data());
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
    case KvDtype::F32: return attention_over(q, pools_of<float>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
    case KvDtype::BF16: return attention_over(q, pools_of<Bf16>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
    case KvDtype::I8: return attention_over(q, pools_of<int8_t>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
    case KvDtype::F8: return attention_over(q, pools_of<E4m3>(kv), out, batch, n_heads, n_kv, hd, scale, pool);
  }
}

}  // namespace brisk::cpu
