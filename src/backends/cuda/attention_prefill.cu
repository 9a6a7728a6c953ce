#include "backends/cuda/attention_prefill.cuh"

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "backends/cuda/tensor_core.cuh"

namespace brisk::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kBlockQ = kWarps * 16;  // query vectors per block: one m16 row tile per warp
constexpr int kBlockK = 64;           // keys per tile
// Below half a query tile per KV head most of each mma is padding, and the fp32 kernel can still
// split the keys over more blocks; above it the tensor cores win by far (an estimate, to measure).
constexpr int64_t kMinQueryVectors = kBlockQ / 2;
constexpr float kLog2e = 1.4426950408889634f;

// Rows of the bf16 tiles in shared memory are HD + 8 elements apart: 16 extra bytes move each of 8
// consecutive rows to its own group of 4 banks, so ldmatrix (8 rows of 16 bytes per phase) and the
// 8-byte tile stores are free of bank conflicts.
template <int HD>
__host__ __device__ constexpr int tile_stride() {
  return HD + 8;
}

template <int HD>
constexpr size_t smem_bytes() {
  return size_t(kBlockQ + 2 * kBlockK) * tile_stride<HD>() * sizeof(__nv_bfloat16);
}

struct PrefillParams {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  const SequenceSpan* seqs;  // [n_seqs] (grid z)
  const int32_t* block_tables;
  int block_shift;  // log2 of the cache block size (a power of two: no divisions per key)
  int n_heads, n_kv_heads, group;
  int n_q_tiles;     // per KV head, for the sequence with the most rows
  float scale_log2;  // softmax scale * log2(e): the exponentials run as exp2
};

// ---- bf16 packing (the mma and ldmatrix primitives are in tensor_core.cuh) -------------------------

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // lo in the low half: the lower column
  return *reinterpret_cast<const uint32_t*>(&v);
}

// ---- K/V tiles -------------------------------------------------------------------------------------

// Four consecutive head_dim elements of one pool row as loaded, before rounding to bf16. The pool
// element type enters the kernel only here: a bf16 or 8-bit pool adds a specialization.
template <class T>
struct PoolChunk;

template <>
struct PoolChunk<float> {
  float4 raw;
  __device__ __forceinline__ void load(const float* src) {
    raw = __ldg(reinterpret_cast<const float4*>(src));
  }
  __device__ __forceinline__ void clear() { raw = make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
  __device__ __forceinline__ uint2 to_bf16() const {
    return make_uint2(pack_bf16(raw.x, raw.y), pack_bf16(raw.z, raw.w));
  }
};

// This thread's share of one 64-key tile of one KV head, held in registers between the global
// loads (fetch) and the bf16 stores to shared memory (store), so the loads fly during the math.
// Keys at or past key_end read as zeros without touching their slots: those may belong to another
// sequence or hold NaN, and a NaN times a zero probability would still poison the output.
template <class T, int HD>
struct KvTile {
  static constexpr int kChunksPerKey = HD / 4;
  static constexpr int kPerThread = kBlockK * kChunksPerKey / kThreads;
  static_assert(kBlockK * kChunksPerKey % kThreads == 0, "tile shape");
  PoolChunk<T> chunk[kPerThread];

  __device__ __forceinline__ void fetch(const T* pool, const int32_t* table, int block_shift,
                                        int64_t pos_stride, int64_t head_offset, int key0, int key_end,
                                        int tid) {
#pragma unroll
    for (int c = 0; c < kPerThread; ++c) {
      const int i = tid + c * kThreads;
      const int key = key0 + i / kChunksPerKey, d = (i % kChunksPerKey) * 4;
      if (key < key_end) {
        const int64_t slot =
            (int64_t(table[key >> block_shift]) << block_shift) + (key & ((1 << block_shift) - 1));
        chunk[c].load(pool + slot * pos_stride + head_offset + d);
      } else {
        chunk[c].clear();
      }
    }
  }

  __device__ __forceinline__ void store(__nv_bfloat16* tile, int tid) const {  // [kBlockK][stride]
#pragma unroll
    for (int c = 0; c < kPerThread; ++c) {
      const int i = tid + c * kThreads;
      const int key = i / kChunksPerKey, d = (i % kChunksPerKey) * 4;
      *reinterpret_cast<uint2*>(tile + key * tile_stride<HD>() + d) = chunk[c].to_bf16();
    }
  }
};

// ---- the kernel ------------------------------------------------------------------------------------

// The last key query vector qi may see (causal), or -1 for padding past the sequence's rows.
__device__ __forceinline__ int key_limit(const SequenceSpan& seq, int q_per_kv, int group, int qi) {
  return qi < q_per_kv ? seq.first_pos + qi / group : -1;
}

template <int HD>
__global__ void __launch_bounds__(kThreads) prefill_kernel(const PrefillParams p) {
  constexpr int kStride = tile_stride<HD>();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [kBlockQ][kStride]
  __nv_bfloat16* ks = qs + kBlockQ * kStride;                      // [kBlockK][kStride]
  __nv_bfloat16* vs = ks + kBlockK * kStride;                      // [kBlockK][kStride]

  const SequenceSpan seq = p.seqs[blockIdx.z];
  // Blocks start roughly in index order: the tiles with the most keys go first, short ones fill
  // the tail.
  const int tile = p.n_q_tiles - 1 - int(blockIdx.x) / p.n_kv_heads;
  const int kvh = int(blockIdx.x) % p.n_kv_heads;
  const int q_per_kv = seq.n_rows * p.group;  // this sequence's query vectors per KV head
  const int q0 = tile * kBlockQ;
  if (q0 >= q_per_kv) return;  // a tile past a short sequence's rows (the whole block leaves)
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int32_t* table = p.block_tables + seq.table_offset;
  const int64_t pos_stride = int64_t(p.n_kv_heads) * HD, head_offset = int64_t(kvh) * HD;

  // Q tile, rounded to bf16 (zeros past the sequence's rows).
  {
    constexpr int kChunks = HD / 4;
#pragma unroll 4
    for (int i = tid; i < kBlockQ * kChunks; i += kThreads) {
      const int qq = i / kChunks, d = (i % kChunks) * 4, qi = q0 + qq;
      float4 val = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (qi < q_per_kv) {
        const int64_t r = seq.first_row + qi / p.group, h = kvh * p.group + qi % p.group;
        val = __ldg(reinterpret_cast<const float4*>(p.q + (r * p.n_heads + h) * HD + d));
      }
      *reinterpret_cast<uint2*>(qs + qq * kStride + d) =
          make_uint2(pack_bf16(val.x, val.y), pack_bf16(val.z, val.w));
    }
  }

  // Causal limits. The block needs keys 0..key_end-1 (its last row's limit). Each thread holds
  // rows g and g + 8 of its warp's 16; a warp whose rows all see a whole key tile skips the mask,
  // and a warp whose rows see none of it skips the tile's math (it still loads and syncs).
  const int g = lane / 4, tig = lane % 4;
  const int key_end = key_limit(seq, q_per_kv, p.group, min(q0 + kBlockQ, q_per_kv) - 1) + 1;
  const int wq0 = q0 + warp * 16;
  const int limit_lo = key_limit(seq, q_per_kv, p.group, wq0 + g);
  const int limit_hi = key_limit(seq, q_per_kv, p.group, wq0 + g + 8);
  // Limits grow with the query index, so a warp's first row has the smallest and its last valid
  // row the largest; padding rows (limit -1) make every tile need the mask.
  const int warp_min_limit = wq0 + 15 < q_per_kv ? key_limit(seq, q_per_kv, p.group, wq0) : -1;
  const int warp_max_limit =
      wq0 < q_per_kv ? key_limit(seq, q_per_kv, p.group, min(wq0 + 15, q_per_kv - 1)) : -1;

  float o[HD / 8][4];  // this warp's [16, HD] output, as HD/8 mma accumulator tiles
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_lo = -INFINITY, m_hi = -INFINITY;  // running max (log2 units) of rows g, g + 8
  float l_lo = 0.0f, l_hi = 0.0f;            // this lane's part of their running sums

  KvTile<float, HD> kv;
  kv.fetch(p.k, table, p.block_shift, pos_stride, head_offset, 0, key_end, tid);
  kv.store(ks, tid);
  kv.fetch(p.v, table, p.block_shift, pos_stride, head_offset, 0, key_end, tid);
  __syncthreads();  // Q and the first K tile are in place

  for (int kt = 0; kt < key_end; kt += kBlockK) {
    const bool active = kt <= warp_max_limit;
    float s[kBlockK / 8][4];  // scores, then probabilities, of rows g, g + 8 against 64 keys
    if (active) {
#pragma unroll
      for (int n = 0; n < kBlockK / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int kd = 0; kd < HD / 16; ++kd) {
        uint32_t a[4];
        ldmatrix_x4(a, qs + (warp * 16 + lane % 16) * kStride + kd * 16 + (lane / 16) * 8);
#pragma unroll
        for (int j = 0; j < kBlockK / 16; ++j) {  // two 8-key tiles per ldmatrix
          uint32_t b[4];
          ldmatrix_x4(b,
                      ks + (j * 16 + (lane / 16) * 8 + lane % 8) * kStride + kd * 16 + ((lane / 8) % 2) * 8);
          mma_bf16(s[2 * j], a, b[0], b[1]);
          mma_bf16(s[2 * j + 1], a, b[2], b[3]);
        }
      }

      const bool masked = kt + kBlockK - 1 > warp_min_limit;
      float max_lo = -INFINITY, max_hi = -INFINITY;
#pragma unroll
      for (int n = 0; n < kBlockK / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = kt + n * 8 + tig * 2 + (e & 1);
          const int limit = e < 2 ? limit_lo : limit_hi;
          s[n][e] = masked && key > limit ? -INFINITY : s[n][e] * p.scale_log2;
        }
        max_lo = fmaxf(max_lo, fmaxf(s[n][0], s[n][1]));
        max_hi = fmaxf(max_hi, fmaxf(s[n][2], s[n][3]));
      }
      // A row's 64 scores sit in the 4 lanes of a quad.
#pragma unroll
      for (int off = 1; off < 4; off *= 2) {
        max_lo = fmaxf(max_lo, __shfl_xor_sync(0xffffffffu, max_lo, off));
        max_hi = fmaxf(max_hi, __shfl_xor_sync(0xffffffffu, max_hi, off));
      }
      const float new_lo = fmaxf(m_lo, max_lo), new_hi = fmaxf(m_hi, max_hi);
      // A row that has seen no key yet keeps max -inf; exponentiate against 0 then, so that
      // -inf - -inf never makes a NaN (its probabilities and its rescale factor are all 0).
      const float base_lo = new_lo == -INFINITY ? 0.0f : new_lo;
      const float base_hi = new_hi == -INFINITY ? 0.0f : new_hi;
      const float alpha_lo = exp2f(m_lo - base_lo), alpha_hi = exp2f(m_hi - base_hi);
      m_lo = new_lo;
      m_hi = new_hi;
      float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
      for (int n = 0; n < kBlockK / 8; ++n) {
        s[n][0] = exp2f(s[n][0] - base_lo);
        s[n][1] = exp2f(s[n][1] - base_lo);
        s[n][2] = exp2f(s[n][2] - base_hi);
        s[n][3] = exp2f(s[n][3] - base_hi);
        sum_lo += s[n][0] + s[n][1];
        sum_hi += s[n][2] + s[n][3];
      }
      l_lo = l_lo * alpha_lo + sum_lo;
      l_hi = l_hi * alpha_hi + sum_hi;
#pragma unroll
      for (int n = 0; n < HD / 8; ++n) {
        o[n][0] *= alpha_lo;
        o[n][1] *= alpha_lo;
        o[n][2] *= alpha_hi;
        o[n][3] *= alpha_hi;
      }
    }

    kv.store(vs, tid);  // this tile's V, fetched during the Q K^T above
    __syncthreads();    // V in place; every warp is done reading this K tile
    const bool more = kt + kBlockK < key_end;
    if (more) kv.fetch(p.k, table, p.block_shift, pos_stride, head_offset, kt + kBlockK, key_end, tid);

    if (active) {
      // The score accumulator layout of two adjacent 8-key tiles is the A operand layout of one
      // 16-key step, so P goes from registers to the tensor cores without shared memory.
#pragma unroll
      for (int kk = 0; kk < kBlockK / 16; ++kk) {
        const uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                               pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                               pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dp = 0; dp < HD / 16; ++dp) {  // two 8-dim output tiles per ldmatrix
          uint32_t b[4];
          ldmatrix_x4_trans(
              b, vs + (kk * 16 + ((lane / 8) % 2) * 8 + lane % 8) * kStride + dp * 16 + (lane / 16) * 8);
          mma_bf16(o[2 * dp], a, b[0], b[1]);
          mma_bf16(o[2 * dp + 1], a, b[2], b[3]);
        }
      }
    }

    if (more) kv.store(ks, tid);
    __syncthreads();  // next K in place; every warp is done reading this V tile
    if (more) kv.fetch(p.v, table, p.block_shift, pos_stride, head_offset, kt + kBlockK, key_end, tid);
  }

  // Full row sums over the quad, then normalized fp32 outputs (padding rows have l == 0).
#pragma unroll
  for (int off = 1; off < 4; off *= 2) {
    l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
    l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
  }
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int qi = wq0 + g + half * 8;
    if (qi >= q_per_kv) continue;
    const float inv = 1.0f / (half ? l_hi : l_lo);
    const int64_t r = seq.first_row + qi / p.group, h = kvh * p.group + qi % p.group;
    float* dst = p.out + (r * p.n_heads + h) * HD + tig * 2;
#pragma unroll
    for (int n = 0; n < HD / 8; ++n)
      *reinterpret_cast<float2*>(dst + n * 8) = make_float2(o[n][2 * half] * inv, o[n][2 * half + 1] * inv);
  }
}

template <int HD>
void launch_prefill(const PrefillParams& p, const dim3& grid, cudaStream_t stream) {
  constexpr size_t smem = smem_bytes<HD>();
  if (smem > 48 * 1024)  // past the default limit a kernel must opt in
    BRISK_CUDA_CHECK(
        cudaFuncSetAttribute(prefill_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  prefill_kernel<HD><<<grid, kThreads, smem, stream>>>(p);
  BRISK_CUDA_LAUNCH_CHECK();
}

}  // namespace

bool prefill_attention_fits(const AttentionBatch& batch, const AttentionShape& shape) {
  if (shape.head_dim != 64 && shape.head_dim != 128) return false;
  if (shape.softcap > 0.0f || shape.window > 0 || shape.mask != AttentionMask::Causal)
    return false;  // the fp32 kernel does those
  if (shape.n_kv_heads <= 0 || shape.n_heads % shape.n_kv_heads != 0) return false;
  if (batch.block_size <= 0 || (batch.block_size & (batch.block_size - 1)) != 0) return false;
  return batch.max_rows * (shape.n_heads / shape.n_kv_heads) >= kMinQueryVectors;
}

void prefill_attention(const float* q, const float* k_pool, const float* v_pool, float* out,
                       const AttentionBatch& batch, const AttentionShape& shape, cudaStream_t stream) {
  BRISK_CHECK(prefill_attention_fits(batch, shape), "prefill_attention: unsupported shape");
  BRISK_CHECK(prefill_attention_aligned(q, k_pool, v_pool, out),
              "prefill_attention: q, out and the K/V pools must be 16-byte aligned");
  PrefillParams p{};
  p.q = q;
  p.k = k_pool;
  p.v = v_pool;
  p.out = out;
  p.seqs = batch.seqs;
  p.block_tables = batch.block_tables;
  while ((int64_t(1) << p.block_shift) < batch.block_size) ++p.block_shift;
  p.n_heads = int(shape.n_heads);
  p.n_kv_heads = int(shape.n_kv_heads);
  p.group = int(shape.n_heads / shape.n_kv_heads);
  p.n_q_tiles = int(ceil_div(batch.max_rows * p.group, kBlockQ));
  p.scale_log2 = shape.scale * kLog2e;
  const dim3 grid{unsigned(int64_t(p.n_q_tiles) * shape.n_kv_heads), 1, unsigned(batch.n_seqs)};
  if (shape.head_dim == 64)
    launch_prefill<64>(p, grid, stream);
  else
    launch_prefill<128>(p, grid, stream);
}

}  // namespace brisk::cuda
