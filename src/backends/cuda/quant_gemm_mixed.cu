#include "backends/cuda/quant_gemm_mixed.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <string>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/quant_layout.h"
#include "backends/cuda/tensor_core.cuh"
#include "core/dtype.h"
#include "core/quant_blocks.h"

namespace brisk::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
// Each warp owns two m16 tiles of weight rows, so each B fragment (x, from shared memory) feeds
// two mma: with one, ldmatrix traffic for x (256 bytes per mma) would bound the kernel.
constexpr int kRowTiles = 2;
constexpr int kRows = 16 * kRowTiles * kWarps;  // weight rows per block
constexpr int kChunk = 128;         // values per ring stage: one 4-bit group
constexpr int kStepValues = 16;     // one mma's depth
constexpr int kStepsPerChunk = kChunk / kStepValues;
constexpr int kStages = 4;
constexpr int kMaxTiles = 8;           // token tiles (of 8) per block: 64 tokens
constexpr int kMinChunksPerSplit = 4;  // a split-k share long enough to fill the ring
// From this many tokens the warpgroup kernel (Hopper) runs instead of the warp kernel.
constexpr int kWarpgroupMinTokens = 64;
static_assert(kChunk == kQ4GroupValues, "one 4-bit group per stage");

// Within each 16 values, mma slot p multiplies value kSlotValue(p): a lane's register of four
// consecutive codes (4t..4t+3, from ldmatrix) holds the pairs (4t, 4t + 2) and (4t + 1, 4t + 3)
// one mask or byte permute apart, and those are slots (2t, 2t + 1) and (2t + 8, 2t + 9) of the
// A fragment. x is stored in slot order so that ldmatrix gives B fragments in the same order.
__host__ __device__ constexpr int slot_value(int p) { return p < 8 ? 2 * p : 2 * (p - 8) + 1; }

template <DType D>
__host__ __device__ constexpr int code_bits() {
  return D == DType::Q8 ? 8 : 4;
}

// Shared-memory rows are 16 bytes longer than their data, so 8 consecutive rows start in 8
// different 16-byte bank groups (ldmatrix reads 8 rows of 16 bytes per phase without conflicts).
template <DType D>
__host__ __device__ constexpr int weight_stride() {
  return kChunk * code_bits<D>() / 8 + 16;
}
constexpr int kXStride = kChunk * 2 + 16;

// One ring stage (byte offsets): the block's weight rows, its tokens' bf16 values and (4-bit)
// the rows' group words.
template <DType D, int Tokens>
struct Stage {
  static constexpr int weights = 0;
  static constexpr int x = weights + kRows * weight_stride<D>();
  static constexpr int groups = x + Tokens * kXStride;
  static constexpr int bytes = groups + (code_bits<D>() == 4 ? kRows * int(sizeof(uint32_t)) : 0);
  static_assert(x % 16 == 0 && groups % 16 == 0 && bytes % 16 == 0, "16-byte copies");
};

struct GemmArgs {
  const uint8_t* codes;    // weight codes [n, code_row_bytes] (quant_layout.h)
  const uint32_t* params;  // [n, groups]: Q8 row scales (fp32 bits) or 4-bit group words
  int64_t code_row_bytes;
  int groups, padded_k, n, m;
  int chunks_per_split;
  const uint16_t* x;  // bf16 [m, padded_k], slot order per 16 values
  const float* bias;
  float* y;         // [m, n]
  float* partials;  // [splits, m, n] when k is split, else null
  uint16_t levels[16];  // NF4 / LOG4: the codebook in bf16
};

// A 4-bit group word: the fp16 scale in bits 0-15, fp16(1024 + zero) in bits 16-31 (quant_layout.h);
// the zero comes back as bf16(128 + zero) twice, what q4_pair subtracts.
__device__ __forceinline__ void unpack_group(uint32_t word, float& scale, __nv_bfloat162& biased_zero) {
  scale = __half2float(__ushort_as_half(static_cast<unsigned short>(word & 0xffffu)));
  // fp16(1024 + zero) = 0x6400 + zero; bf16(128 + zero) = 0x4300 + zero.
  const uint32_t biased = 0x4300u + ((word >> 16) - 0x6400u);
  const uint32_t pair = biased | (biased << 16);
  biased_zero = *reinterpret_cast<const __nv_bfloat162*>(&pair);
}

// How a stage holds its tokens' x: one padded row per token (ldmatrix, the warp kernel), or 8 x 8
// core matrices (the warpgroup kernel's wgmma descriptor): 128 bytes per 8 tokens x 8 values,
// kCoreK bytes apart along k and kCoreN apart per 8 tokens.
enum class XLayout { Rows, CoreMatrices };
constexpr int kCoreK = 128;
constexpr int kCoreN = kChunk / 8 * kCoreK;

// Each thread's share of a stage's copies, addressed once: the same rows, tokens and 16-byte pieces
// every chunk, only the chunk's offset changes (computing the addresses per chunk cost more
// instructions than the chunk's math). Rows past n and tokens past m repeat the last one: their
// results are computed, never stored.
template <DType D, int Tokens, XLayout Layout>
struct StageLoader {
  static constexpr int kWeightBytes = kChunk * code_bits<D>() / 8;  // per row and chunk
  static constexpr int kWeightPieces = kRows * (kWeightBytes / 16) / kThreads;
  static constexpr int kXPieces = Tokens * (kChunk * 2 / 16) / kThreads;
  static_assert(kRows * (kWeightBytes / 16) % kThreads == 0 && Tokens * (kChunk * 2 / 16) % kThreads == 0 &&
                    kRows == kThreads,
                "whole pieces per thread; one group word per thread");
  static_assert(Layout == XLayout::Rows || Tokens * kChunk * 2 <= Tokens * kXStride, "core matrices fit the x rows");
  using S = Stage<D, Tokens>;

  const uint8_t* codes;
  const uint16_t* x;
  const uint32_t* group;  // 4-bit: this thread's row's group words
  uint32_t w_src[kWeightPieces], x_src[kXPieces];  // byte / element offsets of chunk 0
  uint16_t w_dst[kWeightPieces], x_dst[kXPieces];  // byte offsets within a stage

  __device__ __forceinline__ StageLoader(const GemmArgs& a, int row0, int tok0) : codes(a.codes), x(a.x) {
    constexpr int w_pieces = kWeightBytes / 16, x_pieces = kChunk * 2 / 16;
#pragma unroll
    for (int u = 0; u < kWeightPieces; ++u) {
      const int i = int(threadIdx.x) + u * kThreads, r = i / w_pieces, piece = i % w_pieces;
      w_src[u] = uint32_t(min(row0 + r, a.n - 1)) * uint32_t(a.code_row_bytes) + uint32_t(piece * 16);
      w_dst[u] = uint16_t(S::weights + r * weight_stride<D>() + piece * 16);
    }
#pragma unroll
    for (int u = 0; u < kXPieces; ++u) {
      const int i = int(threadIdx.x) + u * kThreads, t = i / x_pieces, piece = i % x_pieces;
      x_src[u] = uint32_t(min(tok0 + t, a.m - 1)) * uint32_t(a.padded_k) + uint32_t(piece * 8);
      x_dst[u] = uint16_t(S::x + (Layout == XLayout::Rows ? t * kXStride + piece * 16
                                                           : (t / 8) * kCoreN + piece * kCoreK + (t % 8) * 16));
    }
    group = a.params + int64_t(min(row0 + int(threadIdx.x), a.n - 1)) * a.groups;
  }

  __device__ __forceinline__ void weights(int chunk, uint8_t* stage) const {
#pragma unroll
    for (int u = 0; u < kWeightPieces; ++u)
      copy_async16(stage + w_dst[u], codes + w_src[u] + uint32_t(chunk) * kWeightBytes);
    if constexpr (code_bits<D>() == 4) copy_async4(stage + S::groups + threadIdx.x * 4, group + chunk);
  }
  __device__ __forceinline__ void activations(int chunk, uint8_t* stage) const {
#pragma unroll
    for (int u = 0; u < kXPieces; ++u) copy_async16(stage + x_dst[u], x + x_src[u] + uint32_t(chunk) * kChunk);
  }

  // The ring's first kStages - 1 chunks of [first, end), one commit group each. The weights do not
  // depend on x: they are requested before waiting for the kernel that writes it.
  template <class StageOf>
  __device__ __forceinline__ void start(int first, int end, StageOf stage) const {
    for (int c = first; c < first + kStages - 1 && c < end; ++c) weights(c, stage(c));
    wait_for_producer();
    for (int c = first; c < first + kStages - 1; ++c) {
      if (c < end) activations(c, stage(c));
      copy_async_commit();
    }
  }
  // Chunk `next` (when before end) into its stage: one commit group either way.
  template <class StageOf>
  __device__ __forceinline__ void refill(int next, int end, StageOf stage) const {
    if (next < end) {
      weights(next, stage(next));
      activations(next, stage(next));
    }
    copy_async_commit();
  }
};

// The 4-bit group scale and zero of rows g and g + 8 of 16-row tile `tile` in a stage (Q8: scale
// 1, its row scales come at the end).
template <DType D, int Tokens>
__device__ __forceinline__ void tile_group_params(const uint8_t* stage, int tile, int g, float (&scale)[2],
                                                  __nv_bfloat162 (&zero)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    scale[h] = 1.0f;
    if constexpr (code_bits<D>() == 4)
      unpack_group(reinterpret_cast<const uint32_t*>(stage + Stage<D, Tokens>::groups)[tile * 16 + g + 8 * h], scale[h],
                   zero[h]);
  }
}

// Two bf16 from two nibbles at bits 0-3 and 16-19 of v: 0x4300 | c is bf16(128 + c) exactly (the
// unit in the last place at 128 is 1), and subtracting bf16(128 + zero) leaves c - zero exactly.
__device__ __forceinline__ uint32_t q4_pair(uint32_t v, __nv_bfloat162 biased_zero) {
  const uint32_t biased = (v & 0x000F000Fu) | 0x43004300u;
  const __nv_bfloat162 d = __hsub2(*reinterpret_cast<const __nv_bfloat162*>(&biased), biased_zero);
  return *reinterpret_cast<const uint32_t*>(&d);
}

// The codebook's levels for the nibbles at bits 0-3 and 16-19 of v (a 32-byte table lies in 8
// banks, one word each, so any pattern of lookups is conflict-free).
__device__ __forceinline__ uint32_t codebook_pair(uint32_t v, const uint16_t* levels) {
  return uint32_t(levels[v & 15u]) | (uint32_t(levels[(v >> 16) & 15u]) << 16);
}

// Bytes b and b + 2 of r (signed codes) as two bf16, exactly: 0x4B0000nn is 2^23 + nn as an fp32.
__device__ __forceinline__ uint32_t q8_pair(uint32_t biased, int b) {
  const float lo = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7650 + b)) - 8388736.0f;
  const float hi = __uint_as_float(__byte_perm(biased, 0x4B000000u, 0x7652 + b)) - 8388736.0f;
  const __nv_bfloat162 d = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&d);
}

// The A fragment of step q of one 32-byte ldmatrix load (r: rows g, g + 8 of bytes 0-15, then of
// bytes 16-31). 4-bit: a load is 64 values, byte j of each 16 holding value j (low nibble) and
// 16 + j (high), so steps 0-3 are the low / high nibbles of the first 16 bytes, then the second.
// 8-bit: a load is 32 values, steps 0-1 one 16-byte half each.
template <DType D>
__device__ __forceinline__ void a_fragment(const uint32_t (&r)[4], int q, const __nv_bfloat162 (&zero)[2],
                                           const uint16_t* levels, uint32_t (&af)[4]) {
  if constexpr (D == DType::Q8) {
    const uint32_t g = r[2 * q] ^ 0x80808080u, g8 = r[2 * q + 1] ^ 0x80808080u;
    af[0] = q8_pair(g, 0);
    af[1] = q8_pair(g8, 0);
    af[2] = q8_pair(g, 1);
    af[3] = q8_pair(g8, 1);
  } else {
    const uint32_t g = r[(q / 2) * 2], g8 = r[(q / 2) * 2 + 1];
    const int shift = (q % 2) * 4;
    if constexpr (D == DType::Q4) {
      af[0] = q4_pair(g >> shift, zero[0]);
      af[1] = q4_pair(g8 >> shift, zero[1]);
      af[2] = q4_pair(g >> (shift + 8), zero[0]);
      af[3] = q4_pair(g8 >> (shift + 8), zero[1]);
    } else {
      af[0] = codebook_pair(g >> shift, levels);
      af[1] = codebook_pair(g8 >> shift, levels);
      af[2] = codebook_pair(g >> (shift + 8), levels);
      af[3] = codebook_pair(g8 >> (shift + 8), levels);
    }
  }
}

// One finished sum of weight row `row` and token `tok` (either may be past the end: padding): to
// the split's partial sums, or (Q8's row scale and) the bias added, to y.
template <DType D>
__device__ __forceinline__ void store_sum(const GemmArgs& a, int row, int tok, float sum) {
  if (row >= a.n || tok >= a.m) return;
  if (a.partials) {
    a.partials[(int64_t(blockIdx.z) * a.m + tok) * a.n + row] = sum;
    return;
  }
  if constexpr (D == DType::Q8) sum *= __ldg(reinterpret_cast<const float*>(a.params) + row);
  if (a.bias) sum += a.bias[row];
  a.y[int64_t(tok) * a.n + row] = sum;
}

// Block (x, y, z) computes tokens 8 Tiles x.. against weight rows kRows y.. over split z of k; warp
// w owns rows 32w..32w+31 of the block's (two m16 tiles) and every token tile.
template <DType D, int Tiles>
__global__ void __launch_bounds__(kThreads, 1) mixed_gemm_kernel(const GemmArgs a) {
  constexpr int Tokens = 8 * Tiles;
  constexpr bool kFourBit = code_bits<D>() == 4;
  constexpr int kStepsPerLoad = kFourBit ? 4 : 2;  // 32 bytes per row and ldmatrix load
  static_assert(Tiles % 2 == 0, "token tiles load in pairs");
  using S = Stage<D, Tokens>;
  extern __shared__ __align__(16) uint8_t mixed_gemm_smem[];
  __shared__ uint16_t levels[16];
  let_dependents_launch();
  if (threadIdx.x == 0)  // constant indices: a dynamic one would copy the parameters to local memory
#pragma unroll
    for (int i = 0; i < 16; ++i) levels[i] = a.levels[i];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
  const int tok0 = int(blockIdx.x) * Tokens, row0 = int(blockIdx.y) * kRows;
  const int first = int(blockIdx.z) * a.chunks_per_split;
  const int end = min(first + a.chunks_per_split, a.padded_k / kChunk);
  auto stage = [&](int c) { return mixed_gemm_smem + ((c - first) % kStages) * S::bytes; };

  // The weights do not depend on x: the ring's first stages are requested before the wait.
  const StageLoader<D, Tokens, XLayout::Rows> load(a, row0, tok0);
  load.start(first, end, stage);

  float acc[kRowTiles][Tiles][4] = {};
  for (int c = first; c < end; ++c) {
    copy_async_wait<kStages - 2>();  // stage c has landed
    __syncthreads();                 // ... for every thread, and stage c - 1 is no longer read
    load.refill(c + kStages - 1, end, stage);

    const uint8_t* s = stage(c);
    // ldmatrix rows: lanes 0-15 rows 0-15 of tile i, lanes 16-31 the same rows 16 bytes on.
    const uint8_t* wtile = s + S::weights + (warp * 16 * kRowTiles + (lane & 15)) * weight_stride<D>() + (lane >> 4) * 16;
    // B pairs: lanes 0-7 / 8-15 tokens 0-7 at bytes 0 / 16 (tile j), lanes 16-31 tokens 8-15 (tile j + 1).
    const uint8_t* xtile = s + S::x + ((lane & 7) + ((lane >> 4) << 3)) * kXStride + ((lane >> 3) & 1) * 16;
    float group_scale[kRowTiles][2];
    __nv_bfloat162 zero[kRowTiles][2];
#pragma unroll
    for (int i = 0; i < kRowTiles; ++i)
      tile_group_params<D, Tokens>(s, warp * kRowTiles + i, g, group_scale[i], zero[i]);
    float part[kRowTiles][Tiles][4];  // this chunk's sums (4-bit: one group, scaled once below)
#pragma unroll
    for (int i = 0; i < kRowTiles; ++i)
#pragma unroll
      for (int j = 0; j < Tiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) part[i][j][e] = kFourBit ? 0.0f : acc[i][j][e];
#pragma unroll
    for (int load = 0; load < kStepsPerChunk / kStepsPerLoad; ++load) {
      uint32_t r[kRowTiles][4];
#pragma unroll
      for (int i = 0; i < kRowTiles; ++i) ldmatrix_x4(r[i], wtile + i * 16 * weight_stride<D>() + load * 32);
#pragma unroll
      for (int q = 0; q < kStepsPerLoad; ++q) {
        uint32_t af[kRowTiles][4];
#pragma unroll
        for (int i = 0; i < kRowTiles; ++i) a_fragment<D>(r[i], q, zero[i], levels, af[i]);
        const int step = load * kStepsPerLoad + q;
#pragma unroll
        for (int j = 0; j < Tiles; j += 2) {
          uint32_t bf[4];
          ldmatrix_x4(bf, xtile + j * 8 * kXStride + step * 32);
#pragma unroll
          for (int i = 0; i < kRowTiles; ++i) {
            mma_bf16(part[i][j], af[i], bf[0], bf[1]);
            mma_bf16(part[i][j + 1], af[i], bf[2], bf[3]);
          }
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kRowTiles; ++i)
#pragma unroll
      for (int j = 0; j < Tiles; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          acc[i][j][e] = kFourBit ? fmaf(part[i][j][e], group_scale[i][e / 2], acc[i][j][e]) : part[i][j][e];
  }
  copy_async_wait_all();
#pragma unroll
  for (int i = 0; i < kRowTiles; ++i)
#pragma unroll
    for (int j = 0; j < Tiles; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        store_sum<D>(a, row0 + (warp * kRowTiles + i) * 16 + g + (e >= 2 ? 8 : 0), tok0 + 8 * j + 2 * t + (e & 1),
                     acc[i][j][e]);
}

// The warpgroup kernel (Hopper, sm_90a): the same block, ring and widening, but each warpgroup (4
// warps) multiplies with wgmma -- A, the weights, from the registers they were widened in; B, 64
// tokens, straight from the stage -- so one instruction does the work of 16 mma.m16n8k16 and
// the warps' issue slots go to widening. Warpgroup q owns 16-row tiles 8q..8q+7: its warp w the
// tiles 8q + w and 8q + 4 + w, the rows of two m64 products. A step's A registers are refilled
// only after the wgmma reading them has finished (one step in flight while the next widens).
// Measured no faster than the warp kernel (bench/notes-cuda.md item 30): the MMAs were not the bound.
constexpr int kWgTokens = 64;  // N of each wgmma: tokens per block
constexpr int kWgTiles = kWgTokens / 8;

template <DType D>
__global__ void __launch_bounds__(kThreads, 1) mixed_gemm_wgmma_kernel(const GemmArgs a) {
#if defined(BRISK_HAS_WGMMA)
  constexpr bool kFourBit = code_bits<D>() == 4;
  constexpr int kStepsPerLoad = kFourBit ? 4 : 2;
  using S = Stage<D, kWgTokens>;
  extern __shared__ __align__(128) uint8_t mixed_wgmma_smem[];
  __shared__ uint16_t levels[16];
  let_dependents_launch();
  if (threadIdx.x == 0)
#pragma unroll
    for (int i = 0; i < 16; ++i) levels[i] = a.levels[i];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
  const int tok0 = int(blockIdx.x) * kWgTokens, row0 = int(blockIdx.y) * kRows;
  const int first = int(blockIdx.z) * a.chunks_per_split;
  const int end = min(first + a.chunks_per_split, a.padded_k / kChunk);
  auto stage = [&](int c) { return mixed_wgmma_smem + ((c - first) % kStages) * S::bytes; };
  auto row_tile = [&](int i) { return (warp / 4) * 8 + i * 4 + warp % 4; };  // this warp's 16-row tiles

  const StageLoader<D, kWgTokens, XLayout::CoreMatrices> load(a, row0, tok0);
  load.start(first, end, stage);

  float acc[kRowTiles][kWgTiles * 4] = {};
  float part[kRowTiles][kWgTiles * 4] = {};  // 4-bit: one group's sums, scaled into acc after it
  for (int c = first; c < end; ++c) {
    copy_async_wait<kStages - 2>();
    fence_shared_for_wgmma();
    __syncthreads();
    load.refill(c + kStages - 1, end, stage);

    const uint8_t* s = stage(c);
    float group_scale[kRowTiles][2];
    __nv_bfloat162 zero[kRowTiles][2];
#pragma unroll
    for (int i = 0; i < kRowTiles; ++i) tile_group_params<D, kWgTokens>(s, row_tile(i), g, group_scale[i], zero[i]);
    uint32_t af[2][kRowTiles][4];  // by step parity: one step's A in flight, the next's widening
#pragma unroll
    for (int load_index = 0; load_index < kStepsPerChunk / kStepsPerLoad; ++load_index) {
      uint32_t r[kRowTiles][4];
#pragma unroll
      for (int i = 0; i < kRowTiles; ++i)
        ldmatrix_x4(r[i], s + S::weights + (row_tile(i) * 16 + (lane & 15)) * weight_stride<D>() + (lane >> 4) * 16 +
                              load_index * 32);
#pragma unroll
      for (int q = 0; q < kStepsPerLoad; ++q) {
        const int step = load_index * kStepsPerLoad + q, p = step & 1;
#pragma unroll
        for (int i = 0; i < kRowTiles; ++i) a_fragment<D>(r[i], q, zero[i], levels, af[p][i]);
        const uint64_t b = wgmma_descriptor(s + S::x + step * 2 * kCoreK, kCoreK, kCoreN);
        wgmma_fence();
#pragma unroll
        for (int i = 0; i < kRowTiles; ++i) {
          if constexpr (kFourBit) wgmma_m64n64k16_bf16(part[i], af[p][i], b, step > 0);
          else wgmma_m64n64k16_bf16(acc[i], af[p][i], b, 1);
        }
        wgmma_commit();
        wgmma_wait<1>();  // the previous step's products are done: its A registers are free
#pragma unroll
        for (int i = 0; i < kRowTiles; ++i) wgmma_hold(af[p ^ 1][i]);
      }
    }
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < kRowTiles; ++i) {
      wgmma_hold(af[(kStepsPerChunk - 1) & 1][i]);
      wgmma_hold(part[i]);
      wgmma_hold(acc[i]);
    }
    if constexpr (kFourBit)
#pragma unroll
      for (int i = 0; i < kRowTiles; ++i)
#pragma unroll
        for (int e = 0; e < kWgTiles * 4; ++e) acc[i][e] = fmaf(part[i][e], group_scale[i][(e / 2) % 2], acc[i][e]);
  }
  copy_async_wait_all();
#pragma unroll
  for (int i = 0; i < kRowTiles; ++i)
#pragma unroll
    for (int e = 0; e < kWgTiles * 4; ++e)
      store_sum<D>(a, row0 + row_tile(i) * 16 + g + ((e / 2) % 2) * 8, tok0 + 8 * (e / 4) + 2 * t + (e & 1), acc[i][e]);
#else
  __trap();  // launched only on sm_90 devices, which run the sm_90a build
#endif
}

// y[i, j] = (sum over splits s, in order, of partials[s, i, j]) (* row scale) (+ bias).
__global__ void add_splits_kernel(const float* partials, int splits, int m, int n, const float* row_scales,
                                  const float* bias, float* y) {
  let_dependents_launch();
  wait_for_producer();
  const int64_t total = int64_t(m) * n;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float v = partials[i];
    for (int s = 1; s < splits; ++s) v += partials[int64_t(s) * total + i];
    const int row = int(i % n);
    if (row_scales) v *= row_scales[row];
    if (bias) v += bias[row];
    y[i] = v;
  }
}

// x [m, k] fp32 -> [m, padded_k] bf16, each 16 values in slot order, zeros past k. One thread per
// 16 values.
__global__ void x_to_slots_kernel(const float* x, int m, int k, int padded_k, uint16_t* out) {
  let_dependents_launch();
  wait_for_producer();
  const int blocks_per_row = padded_k / kStepValues;
  const int64_t total = int64_t(m) * blocks_per_row;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / blocks_per_row;
    const int col0 = int(i - row * blocks_per_row) * kStepValues;
    const float* src = x + row * k + col0;
    float v[kStepValues];
    if (col0 + kStepValues <= k && (reinterpret_cast<uintptr_t>(src) & 15u) == 0) {
#pragma unroll
      for (int q = 0; q < kStepValues / 4; ++q) {
        const float4 f = reinterpret_cast<const float4*>(src)[q];
        v[4 * q] = f.x, v[4 * q + 1] = f.y, v[4 * q + 2] = f.z, v[4 * q + 3] = f.w;
      }
    } else {
#pragma unroll
      for (int q = 0; q < kStepValues; ++q) v[q] = col0 + q < k ? src[q] : 0.0f;
    }
    uint32_t words[kStepValues / 2];
#pragma unroll
    for (int p = 0; p < kStepValues; p += 2) {
      const __nv_bfloat162 pair = __floats2bfloat162_rn(v[slot_value(p)], v[slot_value(p + 1)]);
      words[p / 2] = *reinterpret_cast<const uint32_t*>(&pair);
    }
    auto* dst = reinterpret_cast<uint4*>(out + row * padded_k + col0);
    dst[0] = make_uint4(words[0], words[1], words[2], words[3]);
    dst[1] = make_uint4(words[4], words[5], words[6], words[7]);
  }
}

std::atomic<int> pinned_path{int(MixedGemmPath::Auto)};

// Whether the current device runs the warpgroup kernel (compute capability 9.x: Hopper, which
// runs the sm_90a build), asked once per device.
bool device_has_wgmma() {
  static std::atomic<int> known[64];  // 0 unknown, 1 no, 2 yes
  int device = 0;
  BRISK_CUDA_CHECK(cudaGetDevice(&device));
  if (device < 0 || device >= 64) return false;
  if (const int k = known[device].load(std::memory_order_relaxed)) return k == 2;
  int major = 0;
  BRISK_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  known[device].store(major == 9 ? 2 : 1, std::memory_order_relaxed);
  return major == 9;
}

// How a call is cut: which kernel, token tiles per block, blocks, split-k.
struct Plan {
  MixedGemmPath path;
  int tiles, token_blocks, row_blocks, splits, chunks_per_split;
};

Plan plan_for(int m, int64_t n, int padded_k, int sm_count) {
  Plan p{};
  const auto pinned = MixedGemmPath(pinned_path.load(std::memory_order_relaxed));
  const bool wgmma = device_has_wgmma() && (pinned == MixedGemmPath::Auto ? m >= kWarpgroupMinTokens
                                                                           : pinned == MixedGemmPath::Warpgroup);
  p.path = wgmma ? MixedGemmPath::Warpgroup : MixedGemmPath::Warp;
  p.tiles = wgmma ? kWgTiles : m <= 16 ? 2 : m <= 32 ? 4 : kMaxTiles;
  p.token_blocks = int(ceil_div(m, 8 * p.tiles));
  p.row_blocks = int(ceil_div(n, kRows));
  const int chunks = padded_k / kChunk, blocks = p.token_blocks * p.row_blocks;
  // Split k only while the blocks do not fill the SMs once, and each share keeps the ring busy.
  const int splits = std::max(1, std::min(sm_count / std::max(blocks, 1), chunks / kMinChunksPerSplit));
  p.chunks_per_split = int(ceil_div(chunks, splits));
  p.splits = int(ceil_div(chunks, p.chunks_per_split));
  return p;
}

size_t x_bytes(int m, int padded_k) { return (size_t(m) * size_t(padded_k) * 2 + 255) / 256 * 256; }

// Past 48 KB of dynamic shared memory a kernel must opt in, once (per instantiation: once per kernel).
template <auto Kernel, size_t Smem>
void launch_with_smem(const GemmArgs& a, const Plan& p, cudaStream_t stream) {
  static const bool configured = [] {
    BRISK_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Smem)));
    return true;
  }();
  (void)configured;
  const dim3 grid(unsigned(p.token_blocks), unsigned(p.row_blocks), unsigned(p.splits));
  launch_overlapped(Kernel, grid, dim3(kThreads), Smem, stream, a);
}

template <DType D>
void launch_for(const GemmArgs& a, const Plan& p, cudaStream_t stream) {
  if (p.path == MixedGemmPath::Warpgroup)
    return launch_with_smem<mixed_gemm_wgmma_kernel<D>, kStages * Stage<D, kWgTokens>::bytes>(a, p, stream);
  if (p.tiles == 2) return launch_with_smem<mixed_gemm_kernel<D, 2>, kStages * Stage<D, 16>::bytes>(a, p, stream);
  if (p.tiles == 4) return launch_with_smem<mixed_gemm_kernel<D, 4>, kStages * Stage<D, 32>::bytes>(a, p, stream);
  launch_with_smem<mixed_gemm_kernel<D, kMaxTiles>, kStages * Stage<D, 8 * kMaxTiles>::bytes>(a, p, stream);
}

}  // namespace

void pin_mixed_gemm_path(MixedGemmPath path) { pinned_path.store(int(path), std::memory_order_relaxed); }

bool has_mixed_gemm(DType dtype) {
  return dtype == DType::Q8 || dtype == DType::Q4 || dtype == DType::NF4 || dtype == DType::LOG4;
}

size_t mixed_gemm_scratch_bytes(int m, const Tensor& w, int sm_count) {
  const QuantDeviceLayout l = quant_device_layout(w.dtype, w.dim(0), w.dim(1));
  const Plan p = plan_for(m, w.dim(0), int(l.padded_k), sm_count);
  return x_bytes(m, int(l.padded_k)) + (p.splits > 1 ? size_t(p.splits) * size_t(m) * size_t(w.dim(0)) * 4 : 0);
}

void quant_gemm_mixed(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, void* scratch,
                      int sm_count, cudaStream_t stream) {
  BRISK_CHECK(has_mixed_gemm(w.dtype), "quant_gemm_mixed: " + std::string(dtype_name(w.dtype)) + " has no mixed GEMM");
  BRISK_CHECK(m >= 1 && w.rank() == 2 && w.dim(1) == k, "quant_gemm_mixed: w must be [n, k] and m >= 1");
  const QuantDeviceView v = quant_device_view(w);
  if (v.n == 0) return;  // nothing to write (and an empty grid is a launch error)
  const Plan p = plan_for(m, v.n, v.padded_k, sm_count);
  BRISK_CHECK(p.row_blocks <= 65535 && uint64_t(v.n) * uint64_t(v.code_row_bytes) < (uint64_t(1) << 32) &&
                  uint64_t(m) * uint64_t(v.padded_k) < (uint64_t(1) << 32),
              "quant_gemm_mixed: the matrix or the activations pass 2^32 bytes (32-bit offsets)");
  auto* xb = static_cast<uint16_t*>(scratch);
  const int64_t x_blocks = int64_t(m) * (v.padded_k / kStepValues);
  launch_overlapped(x_to_slots_kernel, dim3(grid_for(x_blocks, 256)), dim3(256), 0, stream, x, m, k, v.padded_k, xb);

  GemmArgs a{v.codes, v.params, v.code_row_bytes, v.groups, v.padded_k, int(v.n), m, p.chunks_per_split, xb,
             bias, y, nullptr, {}};
  if (p.splits > 1)
    a.partials = reinterpret_cast<float*>(static_cast<uint8_t*>(scratch) + x_bytes(m, v.padded_k));
  if (const QuantTraits& traits = *quant_traits(w.dtype); traits.levels)
    for (int i = 0; i < 16; ++i) a.levels[i] = f32_to_bf16(traits.levels[i]);
  switch (w.dtype) {
    case DType::Q8: launch_for<DType::Q8>(a, p, stream); break;
    case DType::Q4: launch_for<DType::Q4>(a, p, stream); break;
    case DType::NF4: launch_for<DType::NF4>(a, p, stream); break;
    default: launch_for<DType::LOG4>(a, p, stream); break;
  }
  if (p.splits == 1) return;
  const float* row_scales = w.dtype == DType::Q8 ? reinterpret_cast<const float*>(v.params) : nullptr;
  launch_overlapped(add_splits_kernel, dim3(grid_for(int64_t(m) * v.n, 256)), dim3(256), 0, stream,
                    static_cast<const float*>(a.partials), p.splits, m, int(v.n), row_scales, bias, y);
}

}  // namespace brisk::cuda
