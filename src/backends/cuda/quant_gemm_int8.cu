#include "backends/cuda/quant_gemm_int8.cuh"

#include <cuda_fp16.h>

#include <string>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/quant_gemv_int8.cuh"
#include "backends/cuda/quant_layout.h"
#include "backends/cuda/tensor_core.cuh"
#include "core/quant_blocks.h"

namespace brisk::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 16 * kWarps;  // weight rows per block: one m16 tile per warp
constexpr int kChunk = 128;         // values per ring stage: one 4-bit group, four activation blocks
constexpr int kActBlock = 32;       // values per activation scale: one mma's depth
constexpr int kBlocksPerChunk = kChunk / kActBlock;
constexpr int kStages = 4;
static_assert(kActBlock == kActivationBlock, "the CPU's activation block");
static_assert(kChunk == kQ4GroupValues, "one 4-bit group per stage");

// Shared-memory rows are 16 bytes longer than their data: 8 consecutive rows then start in 8
// different 16-byte bank groups, so ldmatrix (8 rows of 16 bytes per phase) has no conflicts.
template <int Bits>
__host__ __device__ constexpr int weight_bytes() {  // per row and stage
  return kChunk * Bits / 8;
}
template <int Bits>
__host__ __device__ constexpr int weight_stride() {
  return weight_bytes<Bits>() + 16;
}
constexpr int kCodeStride = kChunk + 16;

// One ring stage (byte offsets): the block's weight rows, its tokens' activation codes and
// {scale, code sum} of their four 32-value blocks, and (4-bit) the rows' group words.
template <int Bits, int Tokens>
struct Stage {
  static constexpr int weights = 0;
  static constexpr int codes = weights + kRows * weight_stride<Bits>();
  static constexpr int scales = codes + Tokens * kCodeStride;
  static constexpr int groups = scales + Tokens * kBlocksPerChunk * int(sizeof(float2));
  static constexpr int bytes = groups + kRows * int(sizeof(uint32_t));
  static_assert(codes % 16 == 0 && scales % 16 == 0 && groups % 16 == 0 && bytes % 16 == 0, "16-byte copies");
};

struct GemmArgs {
  const uint8_t* codes;    // weight codes [n, code_row_bytes] (quant_layout.h)
  const uint32_t* params;  // [n, groups]: Q8 row scales (fp32 bits) or Q4 group words
  int64_t code_row_bytes;
  int groups, padded_k, n, m;
  const int8_t* x_codes;   // [m, padded_k], value order
  const float2* x_blocks;  // [m, padded_k / 32]
  const float* bias;
  float* y;  // [m, n]
};

// Rows past n and tokens past m repeat the last one: their results are computed, never stored.
template <int Bits, int Tokens>
__device__ __forceinline__ void load_weights(const GemmArgs& a, int row0, int chunk, uint8_t* stage) {
  using S = Stage<Bits, Tokens>;
  constexpr int pieces = weight_bytes<Bits>() / 16;
  const int64_t col = int64_t(chunk) * weight_bytes<Bits>();
  for (int i = int(threadIdx.x); i < kRows * pieces; i += kThreads) {
    const int r = i / pieces, piece = i - r * pieces, row = min(row0 + r, a.n - 1);
    copy_async16(stage + S::weights + r * weight_stride<Bits>() + piece * 16,
                 a.codes + row * a.code_row_bytes + col + piece * 16);
  }
  if constexpr (Bits == 4) {
    for (int r = int(threadIdx.x); r < kRows; r += kThreads)
      copy_async4(stage + S::groups + r * 4, a.params + int64_t(min(row0 + r, a.n - 1)) * a.groups + chunk);
  }
}

template <int Bits, int Tokens>
__device__ __forceinline__ void load_codes(const GemmArgs& a, int tok0, int chunk, uint8_t* stage) {
  using S = Stage<Bits, Tokens>;
  constexpr int code_pieces = kChunk / 16, scale_pieces = kBlocksPerChunk * int(sizeof(float2)) / 16;
  for (int i = int(threadIdx.x); i < Tokens * code_pieces; i += kThreads) {
    const int t = i / code_pieces, piece = i - t * code_pieces, tok = min(tok0 + t, a.m - 1);
    copy_async16(stage + S::codes + t * kCodeStride + piece * 16,
                 a.x_codes + int64_t(tok) * a.padded_k + int64_t(chunk) * kChunk + piece * 16);
  }
  for (int i = int(threadIdx.x); i < Tokens * scale_pieces; i += kThreads) {
    const int t = i / scale_pieces, piece = i - t * scale_pieces, tok = min(tok0 + t, a.m - 1);
    const float2* src = a.x_blocks + int64_t(tok) * (a.padded_k / kActBlock) + chunk * kBlocksPerChunk;
    copy_async16(stage + S::scales + (t * kBlocksPerChunk) * int(sizeof(float2)) + piece * 16,
                 reinterpret_cast<const uint8_t*>(src) + piece * 16);
  }
}

// Four 4-bit codes (the low or the high nibbles of a word's bytes) minus the row's zero point, as
// four signed bytes: (c | 0x80) - zero stays within 113..143 per byte (no borrow into the next),
// and flipping bit 7 turns 128 + (c - zero) into c - zero in two's complement.
__device__ __forceinline__ uint32_t levels(uint32_t nibbles, uint32_t zeros) {
  return (((nibbles & 0x0F0F0F0Fu) | 0x80808080u) - zeros) ^ 0x80808080u;
}

// acc (one 8-token tile's c fragment) += the block products d in fp32: 4-bit as the GEMV does,
// (d * x scale) * group scale; 8-bit d * x scale (the row scale comes at the end).
template <int Bits>
__device__ __forceinline__ void add_block(float (&acc)[4], const int (&d)[4], float sx_a, float sx_b,
                                          const float (&group_scale)[2]) {
  if constexpr (Bits == 4) {
    acc[0] = fmaf(float(d[0]) * sx_a, group_scale[0], acc[0]);
    acc[1] = fmaf(float(d[1]) * sx_b, group_scale[0], acc[1]);
    acc[2] = fmaf(float(d[2]) * sx_a, group_scale[1], acc[2]);
    acc[3] = fmaf(float(d[3]) * sx_b, group_scale[1], acc[3]);
  } else {
    acc[0] = fmaf(float(d[0]), sx_a, acc[0]);
    acc[1] = fmaf(float(d[1]), sx_b, acc[1]);
    acc[2] = fmaf(float(d[2]), sx_a, acc[2]);
    acc[3] = fmaf(float(d[3]), sx_b, acc[3]);
  }
}

// Block (x, y) computes rows 64x.. of y for tokens (8 Tiles) y..; warp w owns rows 16w..16w+15
// of the block's and every token tile.
template <int Bits, int Tiles>
__global__ void __launch_bounds__(kThreads) int8_gemm_kernel(const GemmArgs a) {
  constexpr int Tokens = 8 * Tiles;
  static_assert(Tiles % 2 == 0, "token tiles load in pairs");
  using S = Stage<Bits, Tokens>;
  extern __shared__ __align__(16) uint8_t int8_gemm_smem[];
  let_dependents_launch();
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
  const int row0 = int(blockIdx.x) * kRows, tok0 = int(blockIdx.y) * Tokens;
  const int chunks = a.padded_k / kChunk;
  auto stage = [&](int c) { return int8_gemm_smem + (c % kStages) * S::bytes; };

  // The weights do not depend on x: the ring's first stages are requested before the wait.
  for (int c = 0; c < kStages - 1 && c < chunks; ++c) load_weights<Bits, Tokens>(a, row0, c, stage(c));
  wait_for_producer();
  for (int c = 0; c < kStages - 1; ++c) {
    if (c < chunks) load_codes<Bits, Tokens>(a, tok0, c, stage(c));
    copy_async_commit();
  }

  float acc[Tiles][4] = {};
  for (int c = 0; c < chunks; ++c) {
    copy_async_wait<kStages - 2>();  // stage c has landed
    __syncthreads();                 // ... for every thread, and stage c - 1 is no longer read
    const int next = c + kStages - 1;
    if (next < chunks) {
      load_weights<Bits, Tokens>(a, row0, next, stage(next));
      load_codes<Bits, Tokens>(a, tok0, next, stage(next));
    }
    copy_async_commit();

    const uint8_t* s = stage(c);
    // ldmatrix rows: lanes 0-15 rows 0-15 of the warp's tile, lanes 16-31 the same rows 16 bytes on.
    const uint8_t* wtile = s + S::weights + (warp * 16 + (lane & 15)) * weight_stride<Bits>() + (lane >> 4) * 16;
    // B pairs: lanes 0-7 / 8-15 tokens 0-7 at bytes 0 / 16 (tile j), lanes 16-31 tokens 8-15 (tile j + 1).
    const uint8_t* xtile = s + S::codes + ((lane & 7) + ((lane >> 4) << 3)) * kCodeStride + ((lane >> 3) & 1) * 16;
    const auto* sx = reinterpret_cast<const float2*>(s + S::scales);
    float group_scale[2] = {1.0f, 1.0f};
    uint32_t zeros[2] = {0u, 0u};
    if constexpr (Bits == 4) {
      const auto* words = reinterpret_cast<const uint32_t*>(s + S::groups);
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // rows g and g + 8
        const uint32_t word = words[warp * 16 + g + 8 * h];
        group_scale[h] = __half2float(__ushort_as_half(static_cast<unsigned short>(word & 0xffffu)));
        zeros[h] = uint32_t(int(word >> 16) - 0x6400) * 0x01010101u;  // fp16(1024 + zero) = 0x6400 + zero
      }
    }
    uint32_t packed[4];
#pragma unroll
    for (int step = 0; step < kBlocksPerChunk; ++step) {
      uint32_t af[4];
      if constexpr (Bits == 8) {
        ldmatrix_x4(af, wtile + step * 32);  // 32 codes per row and step: a0..a3 as they come
      } else {
        // 16 bytes per row and step (value j low, 16 + j high in byte j): one ldmatrix serves two
        // steps, rows g / g + 8 of step 2p in packed[0] / [1], of step 2p + 1 in [2] / [3].
        if (step % 2 == 0) ldmatrix_x4(packed, wtile + step * 16);
        const uint32_t row_g = packed[(step % 2) * 2], row_g8 = packed[(step % 2) * 2 + 1];
        af[0] = levels(row_g, zeros[0]);
        af[1] = levels(row_g8, zeros[1]);
        af[2] = levels(row_g >> 4, zeros[0]);
        af[3] = levels(row_g8 >> 4, zeros[1]);
      }
#pragma unroll
      for (int j = 0; j < Tiles; j += 2) {
        uint32_t bf[4];
        ldmatrix_x4(bf, xtile + j * 8 * kCodeStride + step * 32);
        int d0[4], d1[4];
        mma_s8(d0, af, bf[0], bf[1]);
        mma_s8(d1, af, bf[2], bf[3]);
        const int tok_a = 8 * j + 2 * t;  // this lane's c columns in tile j; tile j + 1 is 8 on
        add_block<Bits>(acc[j], d0, sx[tok_a * kBlocksPerChunk + step].x,
                        sx[(tok_a + 1) * kBlocksPerChunk + step].x, group_scale);
        add_block<Bits>(acc[j + 1], d1, sx[(tok_a + 8) * kBlocksPerChunk + step].x,
                        sx[(tok_a + 9) * kBlocksPerChunk + step].x, group_scale);
      }
    }
  }
  copy_async_wait_all();

#pragma unroll
  for (int j = 0; j < Tiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = row0 + warp * 16 + g + (e >= 2 ? 8 : 0), tok = tok0 + 8 * j + 2 * t + (e & 1);
      if (row >= a.n || tok >= a.m) continue;
      float v = acc[j][e];
      if constexpr (Bits == 8) v *= __uint_as_float(__ldg(a.params + row));
      if (a.bias) v += a.bias[row];
      a.y[int64_t(tok) * a.n + row] = v;
    }
}

template <int Bits, int Tiles>
void launch(const GemmArgs& a, cudaStream_t stream) {
  constexpr size_t smem = size_t(kStages) * Stage<Bits, 8 * Tiles>::bytes;
  static const bool configured = [] {  // once: past 48 KB of dynamic shared memory needs opting in
    BRISK_CUDA_CHECK(cudaFuncSetAttribute(int8_gemm_kernel<Bits, Tiles>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(smem)));
    return true;
  }();
  (void)configured;
  const dim3 grid(unsigned(ceil_div(a.n, kRows)), unsigned(ceil_div(a.m, 8 * Tiles)));
  launch_overlapped(int8_gemm_kernel<Bits, Tiles>, grid, dim3(kThreads), smem, stream, a);
}

// Token tiles per block: as few as m needs, up to 8 (64 tokens; more go to more blocks).
template <int Bits>
void launch_for(const GemmArgs& a, cudaStream_t stream) {
  if (a.m <= 16) return launch<Bits, 2>(a, stream);
  if (a.m <= 32) return launch<Bits, 4>(a, stream);
  launch<Bits, 8>(a, stream);
}

}  // namespace

bool has_int8_gemm(DType dtype) { return dtype == DType::Q8 || dtype == DType::Q4; }

void quant_gemm_int8(const float* x, int m, int k, const Tensor& w, const float* bias, float* y, void* scratch,
                     cudaStream_t stream) {
  BRISK_CHECK(has_int8_gemm(w.dtype), "quant_gemm_int8: " + std::string(dtype_name(w.dtype)) + " has no int8 GEMM");
  BRISK_CHECK(m >= 1 && w.rank() == 2 && w.dim(1) == k, "quant_gemm_int8: w must be [n, k] and m >= 1");
  const QuantDeviceView v = quant_device_view(w);
  if (v.n == 0) return;  // nothing to write (and an empty grid is a launch error)
  auto* codes = static_cast<int8_t*>(scratch);
  auto* blocks = reinterpret_cast<float2*>(codes + size_t(m) * size_t(v.padded_k));
  quantize_activation_blocks(x, m, k, v.padded_k, codes, blocks, stream);
  const GemmArgs a{v.codes, v.params, v.code_row_bytes, v.groups, v.padded_k, int(v.n), m, codes, blocks, bias, y};
  if (w.dtype == DType::Q8) return launch_for<8>(a, stream);
  launch_for<4>(a, stream);
}

}  // namespace brisk::cuda
