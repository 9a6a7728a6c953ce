#include "backends/cuda/attention.cuh"

#include "backends/cuda/kv_elements.cuh"

#include <algorithm>
#include <cmath>

#include "backends/cuda/attention_prefill.cuh"

namespace brisk::cuda {

namespace {

// Query vectors per block (rows x heads of one KV head): 16 for prefill; 4 for decode, where a
// row brings only `group` query vectors and a 16-wide tile would mostly compute on padding.
constexpr int kWideTile = 16, kNarrowTile = 4;
constexpr int kKeyTile = 32;   // keys per shared-memory tile
constexpr int kThreads = 128;  // kThreads / tile threads per query vector
// A split holds at least one key tile: the merge costs the last block one extra read of the
// partials, less than a second tile load-and-compute round (short decode contexts).
constexpr int64_t kMinSplitKeys = kKeyTile;
constexpr int64_t kMaxSplits = 128;

struct Params {
  const float* q;
  const void* k;  // [slots, n_kv_heads, head_dim] of the kernel's element type
  const void* v;
  const float* k_scales;  // [slots, n_kv_heads] for int8/fp8
  const float* v_scales;
  float* out;
  float* part_o;   // [n_splits, rows * n_heads, head_dim] when n_splits > 1
  float* part_ml;  // [n_splits, rows * n_heads, 2]: running max and sum
  int* arrivals;   // [grid.z * grid.x] splits finished per (sequence, KV head, query tile); zeros
  const SequenceSpan* seqs;  // [n_seqs] (grid z)
  const int32_t* block_tables;
  int block_size;
  int total_rows, n_heads, n_kv_heads, head_dim, group;
  int n_q_tiles;  // per KV head, for the sequence with the most rows
  int split_keys, n_splits;
  float scale;
  float softcap;  // > 0: score = softcap * tanh(score / softcap)
  int window;     // > 0: a query at position p sees keys p - window + 1 .. p
  bool bidirectional;  // every query sees all keys of its sequence's chunk
  bool vec4;  // K/V rows can be read 4 elements at a time
};

// Keys and values as fp32: the stored element times its row's scale (int8/fp8).
template <class T>
__device__ float4 scaled(float4 x, const float* scales, int64_t head_row) {
  if constexpr (KvElement<T>::kScaled) {
    const float s = scales[head_row];
    x.x *= s;
    x.y *= s;
    x.z *= s;
    x.w *= s;
  }
  return x;
}
template <class T>
__device__ float scaled(float x, const float* scales, int64_t head_row) {
  if constexpr (KvElement<T>::kScaled) x *= scales[head_row];
  return x;
}

template <int HD, int QT>
constexpr size_t smem_floats() {
  // q [QT][HD+1], k [32][HD+1], v [32][HD], p [QT][33]; odd row strides keep banks apart.
  return size_t(QT * (HD + 1) + kKeyTile * (HD + 1) + kKeyTile * HD + QT * (kKeyTile + 1));
}

template <int HD, int QT, class T>
__global__ void __launch_bounds__(kThreads) attention_kernel(const Params p) {
  constexpr int kQueryTile = QT;
  constexpr int kSub = kThreads / QT;  // threads per query vector (consecutive lanes)
  constexpr int kKeysPerThread = kKeyTile / kSub;
  static_assert(kKeysPerThread >= 1 && HD % kSub == 0, "tile shape");
  let_dependents_launch();
  extern __shared__ float smem[];
  float* qs = smem;
  float* ks = qs + kQueryTile * (HD + 1);
  float* vs = ks + kKeyTile * (HD + 1);  // offset (QT + 32) * (HD + 1) floats: 16-byte aligned
  float* ps = vs + kKeyTile * HD;

  // Sequence spans and block tables are uploaded before a step's first kernel, so (unlike q and
  // the cache) they may be read before the wait: the span and the first tile's cache slots are
  // in registers when the previous kernel's data becomes visible.
  const int kvh = int(blockIdx.x) / p.n_q_tiles;
  const int tile = int(blockIdx.x) % p.n_q_tiles;
  const int split = int(blockIdx.y);
  const SequenceSpan seq = p.seqs[blockIdx.z];
  const int q_per_kv = seq.n_rows * p.group;  // this sequence's query vectors per KV head
  const bool past_rows = tile * kQueryTile >= q_per_kv;  // a tile past a short sequence's rows
  const int32_t* table = p.block_tables + seq.table_offset;
  const int tid = int(threadIdx.x);
  const int ql = tid / kSub, sub = tid % kSub;
  const int hd = p.head_dim;
  const int64_t pos_stride = int64_t(p.n_kv_heads) * hd;  // elements between cache positions
  const T* k_pool = static_cast<const T*>(p.k);
  const T* v_pool = static_cast<const T*>(p.v);

  const int my_qi = tile * kQueryTile + ql;
  const bool my_valid = my_qi < q_per_kv;
  const int my_r = my_valid ? my_qi / p.group : 0;  // row within the sequence
  const int my_h = kvh * p.group + (my_valid ? my_qi % p.group : 0);
  const int chunk_last_key = seq.first_pos + seq.n_rows - 1;
  // Causal: keys 0..pos; bidirectional: the whole chunk.
  const int my_last_key = !my_valid ? -1 : p.bidirectional ? chunk_last_key : seq.first_pos + my_r;

  const int tile_last_q = min(tile * kQueryTile + kQueryTile - 1, q_per_kv - 1);
  const int tile_last_key = p.bidirectional ? chunk_last_key : seq.first_pos + tile_last_q / p.group;
  const int key_begin = split * p.split_keys;
  const int key_end = min(key_begin + p.split_keys, tile_last_key + 1);

  // The vector path's K/V loads: kLoads float4s of K (and of V) per thread and tile, issued in
  // batches of kBatch, every load of a batch before the first store (a load-store loop pays one
  // memory round trip per iteration). slot_of: the cache slot of a batch's load u, or -1.
  constexpr int kVecs = HD / 4;
  constexpr int kLoads = kKeyTile * kVecs / kThreads;
  constexpr int kBatch = kLoads < 8 ? kLoads : 8;
  static_assert(kLoads % kBatch == 0, "tile shape");
  auto slot_of = [&](int kt, int b0, int u) {
    const int i = tid + (b0 + u) * kThreads;
    const int key = kt + i / kVecs, d = (i % kVecs) * 4;
    return key < key_end && d < hd ? table[key / p.block_size] * p.block_size + key % p.block_size : -1;
  };
  int first_slots[kBatch];  // the first tile's first batch
#pragma unroll
  for (int u = 0; u < kBatch; ++u) first_slots[u] = p.vec4 && !past_rows ? slot_of(key_begin, 0, u) : -1;
  wait_for_producer();  // also in a block with no work: completion stays transitive down the chain
  if (past_rows) return;

  // The query tile: its loads, then (below) the first K/V batch's, then the stores of both --
  // one memory round trip for the two.
  constexpr int kQLoads = kQueryTile * HD / kThreads;
  static_assert(kQueryTile * HD % kThreads == 0, "tile shape");
  float q_held[kQLoads];
#pragma unroll
  for (int u = 0; u < kQLoads; ++u) {
    const int i = tid + u * kThreads, qq = i / HD, d = i % HD;
    const int qi = tile * kQueryTile + qq;
    q_held[u] = 0.0f;
    if (qi < q_per_kv && d < hd) {
      const int r = seq.first_row + qi / p.group, h = kvh * p.group + qi % p.group;
      q_held[u] = p.q[(int64_t(r) * p.n_heads + h) * hd + d];
    }
  }
  bool q_stored = false;
  auto store_q = [&] {
    if (q_stored) return;
#pragma unroll
    for (int u = 0; u < kQLoads; ++u) {
      const int i = tid + u * kThreads;
      qs[(i / HD) * (HD + 1) + i % HD] = q_held[u];
    }
    q_stored = true;
  };

  constexpr int kOut = HD / kSub;  // output dims per thread: sub, sub + kSub, ...
  float o[kOut];
#pragma unroll
  for (int i = 0; i < kOut; ++i) o[i] = 0.0f;
  float m_run = -INFINITY, l_part = 0.0f;

  for (int kt = key_begin; kt < key_end; kt += kKeyTile) {
    __syncthreads();  // the previous tile is no longer read
    if (p.vec4) {
#pragma unroll
      for (int b0 = 0; b0 < kLoads; b0 += kBatch) {
        float4 kv[kBatch], vv[kBatch];
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
          const int slot = kt == key_begin && b0 == 0 ? first_slots[u] : slot_of(kt, b0, u);
          kv[u] = vv[u] = make_float4(0, 0, 0, 0);
          if (slot >= 0) {
            const int d = ((tid + (b0 + u) * kThreads) % kVecs) * 4;
            const int64_t off = int64_t(slot) * pos_stride + int64_t(kvh) * hd + d;
            const int64_t head_row = int64_t(slot) * p.n_kv_heads + kvh;
            kv[u] = scaled<T>(KvElement<T>::load4(k_pool + off), p.k_scales, head_row);
            vv[u] = scaled<T>(KvElement<T>::load4(v_pool + off), p.v_scales, head_row);
          }
        }
        store_q();
#pragma unroll
        for (int u = 0; u < kBatch; ++u) {
          const int i = tid + (b0 + u) * kThreads;
          const int kk = i / kVecs, d = (i % kVecs) * 4;
          float* kd = ks + kk * (HD + 1) + d;
          kd[0] = kv[u].x;
          kd[1] = kv[u].y;
          kd[2] = kv[u].z;
          kd[3] = kv[u].w;
          *reinterpret_cast<float4*>(vs + kk * HD + d) = vv[u];
        }
      }
    } else {
      store_q();
      for (int i = tid; i < kKeyTile * HD; i += kThreads) {
        const int kk = i / HD, d = i % HD, key = kt + kk;
        float kv = 0.0f, vv = 0.0f;
        if (key < key_end && d < hd) {
          const int64_t slot = int64_t(table[key / p.block_size]) * p.block_size + key % p.block_size;
          const int64_t off = slot * pos_stride + int64_t(kvh) * hd + d;
          const int64_t head_row = slot * p.n_kv_heads + kvh;
          kv = scaled<T>(KvElement<T>::load(k_pool[off]), p.k_scales, head_row);
          vv = scaled<T>(KvElement<T>::load(v_pool[off]), p.v_scales, head_row);
        }
        ks[kk * (HD + 1) + d] = kv;
        vs[kk * HD + d] = vv;
      }
    }
    __syncthreads();

    // Scores of my query against keys sub, sub + kSub, ... of the tile.
    float s[kKeysPerThread];
#pragma unroll
    for (int c = 0; c < kKeysPerThread; ++c) s[c] = 0.0f;
    const float* qrow = qs + ql * (HD + 1);
#pragma unroll 4
    for (int d = 0; d < hd; ++d) {
      const float qd = qrow[d];
#pragma unroll
      for (int c = 0; c < kKeysPerThread; ++c)
        s[c] = fmaf(qd, ks[(sub + kSub * c) * (HD + 1) + d], s[c]);
    }
    float tile_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < kKeysPerThread; ++c) {
      const int key = kt + sub + kSub * c;
      const bool in_window = p.window <= 0 || key > my_last_key - p.window;
      float score = s[c] * p.scale;
      if (p.softcap > 0.0f) score = p.softcap * tanhf(score / p.softcap);
      s[c] = key <= my_last_key && key < key_end && in_window ? score : -INFINITY;
      tile_max = fmaxf(tile_max, s[c]);
    }
    // The kSub threads of a query are consecutive lanes of one warp.
#pragma unroll
    for (int off = kSub / 2; off > 0; off /= 2)
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, off));
    const float m_new = fmaxf(m_run, tile_max);
    float alpha = 1.0f, p_sum = 0.0f;
    if (m_new == -INFINITY) {  // nothing visible yet: keep everything at zero
#pragma unroll
      for (int c = 0; c < kKeysPerThread; ++c) s[c] = 0.0f;
    } else {
      alpha = expf(m_run - m_new);
#pragma unroll
      for (int c = 0; c < kKeysPerThread; ++c) {
        s[c] = expf(s[c] - m_new);
        p_sum += s[c];
      }
    }
    m_run = m_new;
    l_part = l_part * alpha + p_sum;
#pragma unroll
    for (int c = 0; c < kKeysPerThread; ++c) ps[ql * (kKeyTile + 1) + sub + kSub * c] = s[c];
#pragma unroll
    for (int i = 0; i < kOut; ++i) o[i] *= alpha;
    __syncthreads();

    const float* prow = ps + ql * (kKeyTile + 1);
    const int keys_here = min(kKeyTile, key_end - kt);
    for (int kk = 0; kk < keys_here; ++kk) {
      const float pk = prow[kk];
      const float* vrow = vs + kk * HD + sub;
#pragma unroll
      for (int i = 0; i < kOut; ++i) o[i] = fmaf(pk, vrow[kSub * i], o[i]);
    }
  }

  float l = l_part;
#pragma unroll
  for (int off = kSub / 2; off > 0; off /= 2) l += __shfl_xor_sync(0xffffffffu, l, off);
  const int64_t gq = int64_t(seq.first_row + my_r) * p.n_heads + my_h;
  if (p.n_splits == 1) {
    if (!my_valid) return;
    const float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < kOut; ++i) {
      const int d = sub + kSub * i;
      if (d < hd) p.out[gq * hd + d] = o[i] * inv;
    }
    return;
  }
  const int64_t total_q = int64_t(p.total_rows) * p.n_heads;
  if (my_valid) {
    const int64_t slot = int64_t(split) * total_q + gq;
#pragma unroll
    for (int i = 0; i < kOut; ++i) {
      const int d = sub + kSub * i;
      if (d < hd) p.part_o[slot * hd + d] = o[i];
    }
    if (sub == 0) {
      p.part_ml[slot * 2] = m_run;
      p.part_ml[slot * 2 + 1] = l;
    }
  }
  // The last split of this tile to finish merges them all (no second kernel): partials are
  // made visible before the arrival is counted, and the counter is left at zero for the next call.
  __shared__ bool merges;
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    int* arrivals = p.arrivals + blockIdx.z * gridDim.x + blockIdx.x;
    merges = atomicAdd(arrivals, 1) == p.n_splits - 1;
    if (merges) *arrivals = 0;
  }
  __syncthreads();
  if (!merges || !my_valid) return;
  __threadfence();
  // Rescale each partial to the global max, then normalize (__ldcg: other blocks wrote them).
  // The loads of several splits are independent and unrolled to be in flight together: at long
  // contexts this loop over dozens of splits is the merging block's whole cost.
  float m_all = -INFINITY;
#pragma unroll 8
  for (int sp = 0; sp < p.n_splits; ++sp) m_all = fmaxf(m_all, __ldcg(p.part_ml + (sp * total_q + gq) * 2));
  float l_all = 0.0f;
  float acc[kOut];
#pragma unroll
  for (int i = 0; i < kOut; ++i) acc[i] = 0.0f;
#pragma unroll 2
  for (int sp = 0; sp < p.n_splits; ++sp) {
    const int64_t slot = sp * total_q + gq;
    const float m = __ldcg(p.part_ml + slot * 2);
    // A split that saw no key of this query left m = -inf, l = 0 and o = 0.
    const float w = m == -INFINITY ? 0.0f : expf(m - m_all);
    l_all += w * __ldcg(p.part_ml + slot * 2 + 1);
#pragma unroll
    for (int i = 0; i < kOut; ++i) {
      const int d = sub + kSub * i;
      if (d < hd) acc[i] += w * __ldcg(p.part_o + slot * hd + d);
    }
  }
  const float inv = 1.0f / l_all;
#pragma unroll
  for (int i = 0; i < kOut; ++i) {
    const int d = sub + kSub * i;
    if (d < hd) p.out[gq * hd + d] = acc[i] * inv;
  }
}

template <int HD, int QT, class T>
void launch_attention(const Params& p, const dim3& grid, cudaStream_t stream) {
  const size_t smem = smem_floats<HD, QT>() * sizeof(float);
  if (smem > 48 * 1024)  // past the default limit a kernel must opt in
    BRISK_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<HD, QT, T>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  launch_overlapped(attention_kernel<HD, QT, T>, grid, dim3(kThreads), smem, stream, p);
}

template <int QT, class T>
void launch_for_head_dim(const Params& p, const dim3& grid, cudaStream_t stream) {
  if (p.head_dim <= 32)
    launch_attention<32, QT, T>(p, grid, stream);
  else if (p.head_dim <= 64)
    launch_attention<64, QT, T>(p, grid, stream);
  else if (p.head_dim <= 128)
    launch_attention<128, QT, T>(p, grid, stream);
  else
    launch_attention<256, QT, T>(p, grid, stream);
}

// The pool's element type becomes the kernel's template type here, and only here.
template <int QT>
void launch_for_dtype(const Params& p, KvDtype dtype, const dim3& grid, cudaStream_t stream) {
  switch (dtype) {
    case KvDtype::F32: return launch_for_head_dim<QT, float>(p, grid, stream);
    case KvDtype::BF16: return launch_for_head_dim<QT, uint16_t>(p, grid, stream);
    case KvDtype::I8: return launch_for_head_dim<QT, int8_t>(p, grid, stream);
    case KvDtype::F8: return launch_for_head_dim<QT, uint8_t>(p, grid, stream);
  }
}

}  // namespace

void attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch,
               const AttentionShape& shape, int sm_count, Scratch& split_scratch,
               Scratch& split_arrivals, cudaStream_t stream) {
  const auto& s = shape;
  if (batch.n_rows <= 0) return;
  BRISK_CHECK(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0,
              "attention: n_heads must be a multiple of n_kv_heads");
  BRISK_CHECK(s.head_dim > 0 && s.head_dim <= kMaxHeadDim,
              "attention: head_dim " + std::to_string(s.head_dim) + " above the supported 256");
  BRISK_CHECK(batch.max_keys < (int64_t(1) << 30) && batch.n_rows * s.n_heads < (int64_t(1) << 30) &&
                  batch.n_seqs < 65536,
              "attention: sizes out of range");
  // Many query rows per sequence (prefill) over f32 pools: the bf16 tensor-core kernel; decode,
  // the narrower pools (read through their own element loads), windows, soft-capping and
  // bidirectional masks stay here in fp32.
  if (kv.dtype == KvDtype::F32) {
    const auto* k_pool = static_cast<const float*>(kv.k);
    const auto* v_pool = static_cast<const float*>(kv.v);
    if (prefill_attention_fits(batch, s) && prefill_attention_aligned(q, k_pool, v_pool, out)) {
      prefill_attention(q, k_pool, v_pool, out, batch, s, stream);
      return;
    }
  }

  Params p{};
  p.q = q;
  p.k = kv.k;
  p.v = kv.v;
  p.k_scales = kv.k_scales;
  p.v_scales = kv.v_scales;
  p.out = out;
  p.seqs = batch.seqs;
  p.block_tables = batch.block_tables;
  p.block_size = int(batch.block_size);
  p.total_rows = int(batch.n_rows);
  p.n_heads = int(s.n_heads);
  p.n_kv_heads = int(s.n_kv_heads);
  p.head_dim = int(s.head_dim);
  p.group = int(s.n_heads / s.n_kv_heads);
  const int64_t max_q_per_kv = batch.max_rows * p.group;
  const int tile = max_q_per_kv <= kNarrowTile ? kNarrowTile : kWideTile;
  p.n_q_tiles = int(ceil_div(max_q_per_kv, tile));
  p.scale = s.scale;
  p.softcap = s.softcap;
  p.window = int(std::min<int64_t>(s.window, int64_t(1) << 30));
  p.bidirectional = s.mask == AttentionMask::Bidirectional;
  BRISK_CHECK(!p.bidirectional || s.window == 0, "attention: sliding windows are causal");
  const uint32_t vec_bytes = 4 * uint32_t(kv_element_bytes(kv.dtype));
  p.vec4 = s.head_dim % 4 == 0 && alignment_of(kv.k) >= vec_bytes && alignment_of(kv.v) >= vec_bytes;

  // Split the keys only when the query tiles alone leave the GPU idle (decode).
  const int64_t blocks = int64_t(p.n_q_tiles) * s.n_kv_heads * batch.n_seqs;
  const int64_t n_keys = batch.max_keys;
  int64_t n_splits = 1;
  // About four blocks per SM: one block's tile loads and math do not overlap, several do.
  if (blocks < 4 * int64_t(sm_count)) {
    const int64_t wanted = ceil_div(4 * int64_t(sm_count), blocks);
    n_splits = std::clamp<int64_t>(std::min(wanted, ceil_div(n_keys, kMinSplitKeys)), 1, kMaxSplits);
  }
  const int64_t split_keys = ceil_div(ceil_div(n_keys, n_splits), kKeyTile) * kKeyTile;
  n_splits = ceil_div(n_keys, split_keys);
  p.split_keys = int(split_keys);
  p.n_splits = int(n_splits);
  const int64_t total_q = batch.n_rows * s.n_heads;
  if (n_splits > 1) {
    const size_t o_floats = size_t(n_splits * total_q * s.head_dim);
    float* base = static_cast<float*>(
        split_scratch.get((o_floats + size_t(n_splits * total_q * 2)) * sizeof(float)));
    p.part_o = base;
    p.part_ml = base + o_floats;
    p.arrivals = static_cast<int*>(
        split_arrivals.get(size_t(int64_t(p.n_q_tiles) * s.n_kv_heads * batch.n_seqs) * sizeof(int)));
  }

  const dim3 grid{unsigned(int64_t(p.n_q_tiles) * s.n_kv_heads), unsigned(n_splits),
                  unsigned(batch.n_seqs)};
  if (tile == kNarrowTile)
    launch_for_dtype<kNarrowTile>(p, kv.dtype, grid, stream);
  else
    launch_for_dtype<kWideTile>(p, kv.dtype, grid, stream);
}

}  // namespace brisk::cuda
