#include "backends/cuda/quant_gemv_int8.cuh"

#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cuda/cuda_common.cuh"
#include "backends/cuda/gemv_common.cuh"
#include "backends/cuda/quant_layout.h"
#include "backends/cuda/tensor_core.cuh"
#include "core/quant_blocks.h"

namespace brisk::cuda {

namespace {

// How a weight code becomes an int8 level: Q8 as is, Q4 a nibble (0..15, the zero point
// subtracted through the activation block's code sum), NF4 / LOG4 a nibble looked up in the
// format's int8 codebook.
enum class Codes { Int8, Int4, Codebook4 };

constexpr int kBlock = 32;  // activation values per int8 scale
static_assert(kBlock == kActivationBlock, "the CPU's activation block");

__host__ __device__ constexpr int values_per_vector(Codes f) { return f == Codes::Int8 ? 16 : 32; }

// ---- where each activation code is staged ---------------------------------------------------
// A 4-bit vector (16 bytes, 32 values; byte j holds value j low and 16 + j high) becomes eight
// 32-bit words of int8 levels; word i is dotted with the activation's word i, so the codes of
// each 32-value block are stored in the order the weight words come out:
//   Int4: word 2t = low nibbles of weight word t (values 4t .. 4t+3), word 2t+1 = high nibbles
//         (values 16+4t .. 16+4t+3).
//   Codebook4: the byte permute takes its four indices from 16 bits, i.e. bytes 4t, 4t+1 of the
//         weight word (values 4t, 16+4t, 4t+1, 17+4t), then bytes 4t+2, 4t+3.
// And the block's two 16-byte halves swap places in blocks with bit 2 of their index set: lanes
// read their block's halves with two 16-byte loads at a 32-byte stride, which would otherwise
// put two lanes of every 8-lane phase on the same banks.
__device__ __forceinline__ int staged_slot(Codes f, int64_t block, int i) {
  int slot = i;
  if (f == Codes::Int4) slot = 8 * ((i & 15) >> 2) + 4 * (i >> 4) + (i & 3);
  if (f == Codes::Codebook4) {
    const int w = i & 15;
    slot = 8 * (w >> 2) + 4 * ((w >> 1) & 1) + 2 * (w & 1) + (i >> 4);
  }
  if (f != Codes::Int8) slot ^= int((block >> 2) & 1) << 4;
  return slot;
}

// Quantized x: codes [m, ld] (ld = the weight's padded k) and per block {scale, code sum as
// int bits} [m, ld / 32].
struct ActCodes {
  int8_t* codes;
  float2* blocks;
  int64_t ld;
};

constexpr int kQuantizeThreads = 256;

// One warp per 32-value block: the host's arithmetic (absmax, IEEE 127 / absmax, product,
// round half to even), so the codes are the CPU's bit for bit.
template <Codes F>
__global__ void __launch_bounds__(kQuantizeThreads)
    quantize_x_kernel(const float* __restrict__ x, int m, int k, ActCodes act) {
  let_dependents_launch();
  wait_for_producer();
  const int lane = int(threadIdx.x) % 32;
  const int64_t per_row = act.ld / kBlock, total = int64_t(m) * per_row;
  const int64_t warps = int64_t(gridDim.x) * (kQuantizeThreads / 32);
  for (int64_t i = int64_t(blockIdx.x) * (kQuantizeThreads / 32) + threadIdx.x / 32; i < total; i += warps) {
    const int64_t row = i / per_row, block = i - row * per_row, col = block * kBlock + lane;
    const float v = col < k ? x[row * k + col] : 0.0f;
    float absmax = fabsf(v);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) absmax = fmaxf(absmax, __shfl_xor_sync(0xffffffffu, absmax, off));
    const float inv = absmax > 0.0f ? 127.0f / absmax : 0.0f;
    const int code = int(rintf(v * inv));
    int sum = code;
#pragma unroll
    for (int off = 16; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    act.codes[row * act.ld + block * kBlock + staged_slot(F, block, lane)] = int8_t(code);
    if (lane == 0) act.blocks[i] = make_float2(absmax / 127.0f, __int_as_float(sum));
  }
}

// ---- the GEMV ---------------------------------------------------------------------------------
// matmul.cu's persistent grid (block b owns rows b, b + G, ...; partial sums per chunk of k in
// shared memory), with the activation codes of a chunk staged once per block (cp.async). Each
// warp takes R = 4 rows at once so every activation word read from shared memory serves 4 rows,
// and keeps U vectors of each row in flight per lane. A warp's first weight loads are issued
// before it waits for the quantized x.

constexpr int kRows = 4;                             // rows per warp
constexpr int kXBytes = 64 * 1024;                   // staged codes + block params, all M rows
constexpr size_t kSmemBytes = kXBytes + kGemvAccFloats * sizeof(float);


// Resident blocks per SM the registers are capped for: 2 (16 warps, 128 registers), but 1 for
// 4-bit codes at M >= 4, whose 4 rows of unpacked codes and 4M sums would spill at 128.
template <Codes F, int M>
__host__ __device__ constexpr int blocks_per_sm_target() { return F != Codes::Int8 && M >= 4 ? 1 : 2; }

// 16-byte vectors of each row in flight per lane: 2, or 1 where registers are short (4-bit codes
// at M = 2, 2 blocks per SM): 32 KB per SM in flight either way.
template <Codes F, int M>
__host__ __device__ constexpr int loads_per_row() {
  return F != Codes::Int8 && blocks_per_sm_target<F, M>() == 2 && M >= 2 ? 1 : 2;
}

struct Codebook {  // NF4 / LOG4: the 16 int8 levels as four words, and what one level unit is worth
  uint32_t word[4];
  float unit;
};

__device__ __forceinline__ uint32_t word_of(const uint4& v, int t) {
  return t == 0 ? v.x : t == 1 ? v.y : t == 2 ? v.z : v.w;  // t is a compile-time constant after unrolling
}

__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t selector) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(selector));
  return r;
}

// Four 4-bit indices (the low 16 bits of `sel`) -> four int8 levels. A byte permute picks from 8
// bytes, so levels 0..7 and 8..15 are looked up separately and bit 3 of each index picks: its
// mask comes from prmt's sign-replicate mode (selector 8 + byte), fed bytes whose top bit is that
// index bit (sel << 4 for indices 0 and 2, sel for 1 and 3).
__device__ __forceinline__ int lookup4(uint32_t sel, const Codebook& book) {
  const uint32_t low = prmt(book.word[0], book.word[1], sel);  // bytes with bit 3 set are dropped below
  const uint32_t high = prmt(book.word[2], book.word[3], sel & 0x7777u);
  const uint32_t pick_high = prmt(sel << 4, sel, 0xD9C8u);
  return int((low & ~pick_high) | (high & pick_high));
}

// 16 weight bytes (32 values) -> eight words of int8 levels, in staged_slot's order.
template <Codes F>
__device__ __forceinline__ void unpack_nibbles(const uint4& w, const Codebook& book, int (&q)[8]) {
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const uint32_t word = word_of(w, t);
    if constexpr (F == Codes::Int4) {
      q[2 * t] = int(word & 0x0F0F0F0Fu);
      q[2 * t + 1] = int((word >> 4) & 0x0F0F0F0Fu);
    } else {
      q[2 * t] = lookup4(word, book);
      q[2 * t + 1] = lookup4(word >> 16, book);
    }
  }
}

// acc[mi][r] += (vector v of row r) . (the staged x of row mi) for one vector per row r.
// 8-bit: 16 values, half an activation block: acc gets int32 dot * x scale (the row's weight
// scale comes at the end). 4-bit: 32 values, one activation block inside one group of 128:
// acc gets (dot - zero * code sum) * x scale * group scale.
template <Codes F, int M>
__device__ __forceinline__ void accumulate_vector(const uint4 (&w)[kRows], const uint32_t (&param)[kRows],
                                                  const int8_t* xs, const float2* blocks_s, int chunk, int v,
                                                  const Codebook& book, float (&acc)[M][kRows]) {
  const int blocks_per_row = chunk / kBlock;
  if constexpr (F == Codes::Int8) {
#pragma unroll
    for (int mi = 0; mi < M; ++mi) {
      const uint4 xa = *reinterpret_cast<const uint4*>(xs + mi * chunk + v * 16);
      const float sx = blocks_s[mi * blocks_per_row + (v >> 1)].x;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        int d = __dp4a(int(w[r].x), int(xa.x), 0);
        d = __dp4a(int(w[r].y), int(xa.y), d);
        d = __dp4a(int(w[r].z), int(xa.z), d);
        d = __dp4a(int(w[r].w), int(xa.w), d);
        acc[mi][r] = fmaf(float(d), sx, acc[mi][r]);
      }
    }
  } else {
    int q[kRows][8];
    float group_scale[kRows];
    int zero[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      unpack_nibbles<F>(w[r], book, q[r]);
      group_scale[r] = __half2float(__ushort_as_half(static_cast<unsigned short>(param[r] & 0xffffu)));
      zero[r] = int(param[r] >> 16) - 0x6400;  // the layout keeps fp16(1024 + zero): 0x6400 + zero
    }
    const int swap = (v >> 2) & 1;  // staged_slot's half swap
#pragma unroll
    for (int mi = 0; mi < M; ++mi) {
      const int8_t* xv = xs + mi * chunk + v * 32;
      const uint4 xa = *reinterpret_cast<const uint4*>(xv + 16 * swap);
      const uint4 xb = *reinterpret_cast<const uint4*>(xv + 16 * (swap ^ 1));
      const float2 blk = blocks_s[mi * blocks_per_row + v];
      const int code_sum = __float_as_int(blk.y);
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        int d = F == Codes::Int4 ? -zero[r] * code_sum : 0;
        d = __dp4a(q[r][0], int(xa.x), d);
        d = __dp4a(q[r][1], int(xa.y), d);
        d = __dp4a(q[r][2], int(xa.z), d);
        d = __dp4a(q[r][3], int(xa.w), d);
        d = __dp4a(q[r][4], int(xb.x), d);
        d = __dp4a(q[r][5], int(xb.y), d);
        d = __dp4a(q[r][6], int(xb.z), d);
        d = __dp4a(q[r][7], int(xb.w), d);
        acc[mi][r] = fmaf(float(d) * blk.x, group_scale[r], acc[mi][r]);
      }
    }
  }
}

// The matrices of one call (GemvOutputs' parts): one dtype and k, so one row layout.
struct QuantParts {
  const uint8_t* codes[GemvOutputs::kMax];
  const uint32_t* params[GemvOutputs::kMax];
  int64_t code_row_bytes;
  int groups, padded_k;

  // Part p's arrays, picked by comparisons: indexing the kernel parameter with a run-time p
  // would copy it to local memory.
  template <class T>
  __device__ __forceinline__ static const T* pick(const T* const (&arrays)[GemvOutputs::kMax], int p) {
    const T* a = arrays[0];
#pragma unroll
    for (int q = 1; q < GemvOutputs::kMax; ++q) a = p == q ? arrays[q] : a;
    return a;
  }
};

// The codes and params of row group g (rows past the block's last repeat its first row; their
// sums are never stored) at chunk c0. The part lookup runs once per row and chunk, not per load.
template <Codes F>
__device__ __forceinline__ void row_pointers(const QuantParts& w, const GemvOutputs& out, int64_t b, int64_t grid,
                                             int64_t rows_here, int64_t g, int c0, const uint8_t* (&wrow)[kRows],
                                             const uint32_t* (&prow)[kRows]) {
  constexpr int kValues = values_per_vector(F);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t j = g * kRows + r, row = out.weight_row(b, j < rows_here ? j : 0, grid);
    const int p = out.part_of(row);
    const int64_t local = row - out.start(p);
    wrow[r] = QuantParts::pick(w.codes, p) + local * w.code_row_bytes + int64_t(c0 / kValues) * 16;
    prow[r] = QuantParts::pick(w.params, p) + local * w.groups + c0 / kQ4GroupValues;
  }
}

// The factor a row's integer sums still need: the 8-bit row scale; 1 for Q4 (the group scales
// are applied per vector); the codebook's unit for NF4 / LOG4.
template <Codes F>
__device__ __forceinline__ float row_scale(const QuantParts& w, const GemvOutputs& out, int64_t row,
                                           const Codebook& book) {
  if constexpr (F == Codes::Int8) {
    const int p = out.part_of(row);
    return __uint_as_float(__ldg(QuantParts::pick(w.params, p) + (row - out.start(p))));
  } else {
    return F == Codes::Int4 ? 1.0f : book.unit;
  }
}

template <Codes F, int U>
__device__ __forceinline__ void load_vectors(const uint8_t* const (&wrow)[kRows], const uint32_t* const (&prow)[kRows],
                                             int v0, int nvec, int lane, uint4 (&buf)[U][kRows],
                                             uint32_t (&param)[U][kRows]) {
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int v = v0 + u * 32 + lane;
      buf[u][r] = v < nvec ? load_streaming(wrow[r] + int64_t(v) * 16) : make_uint4(0, 0, 0, 0);
      // A 4-bit vector's group word (4 vectors per group); 4 neighbouring lanes share it.
      param[u][r] = F != Codes::Int8 && v < nvec ? __ldg(prow[r] + v / 4) : 0u;
    }
}

// The chunk [c0, c0 + len) of every row's codes and block params -> shared memory (rows past m
// as zeros). All copies are in flight at once.
template <int M>
__device__ __forceinline__ void stage_codes(const ActCodes& act, int m, int c0, int len, int chunk, int8_t* xs,
                                            float2* blocks_s) {
  const int code_vectors = len / 16, block_vectors = len / 64;  // 16 bytes: two float2 params
  for (int i = int(threadIdx.x); i < M * code_vectors; i += kGemvThreads) {
    const int mi = i / code_vectors, j = i - mi * code_vectors;
    int8_t* dst = xs + mi * chunk + j * 16;
    if (mi < m) copy_async16(dst, act.codes + mi * act.ld + c0 + j * 16);
    else *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
  }
  for (int i = int(threadIdx.x); i < M * block_vectors; i += kGemvThreads) {
    const int mi = i / block_vectors, j = i - mi * block_vectors;
    float2* dst = blocks_s + mi * (chunk / kBlock) + 2 * j;
    if (mi < m) copy_async16(dst, act.blocks + mi * (act.ld / kBlock) + c0 / kBlock + 2 * j);
    else *reinterpret_cast<float4*>(dst) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
  copy_async_wait_all();
}

template <Codes F, int M>
__global__ void __launch_bounds__(kGemvThreads, blocks_per_sm_target<F, M>())
    int8_gemv_kernel(ActCodes act, int m, QuantParts w, int chunk, Codebook book, const GemvOutputs out) {
  constexpr int U = loads_per_row<F, M>();
  constexpr int kValues = values_per_vector(F);
  static_assert(kRows % 2 == 0, "a SwiGLU row pair must fall to one warp");
  extern __shared__ __align__(16) uint8_t int8_gemv_smem[];
  int8_t* xs = reinterpret_cast<int8_t*>(int8_gemv_smem);                        // [M][chunk]
  float2* blocks_s = reinterpret_cast<float2*>(int8_gemv_smem + M * chunk);      // [M][chunk / 32]
  float* acc_s = reinterpret_cast<float*>(int8_gemv_smem + kXBytes);             // [rows_here][M]

  let_dependents_launch();
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t grid = gridDim.x, b = blockIdx.x, units = out.units();
  const int64_t units_here = units > b ? (units - 1 - b) / grid + 1 : 0;  // units b, b + G, ...
  const int64_t rows_here = units_here * out.rows_per_unit();
  const int64_t row_groups = (rows_here + kRows - 1) / kRows;
  const int padded_k = w.padded_k;

  // The weights do not depend on x: the warp's first loads go out before the wait.
  uint4 buf[U][kRows];
  uint32_t param[U][kRows];
  const uint8_t* wrow[kRows];
  const uint32_t* prow[kRows];
  bool preloaded = false;
  if (warp < row_groups) {
    row_pointers<F>(w, out, b, grid, rows_here, warp, 0, wrow, prow);
    load_vectors<F, U>(wrow, prow, 0, min(chunk, padded_k) / kValues, lane, buf, param);
    preloaded = true;
  }
  wait_for_producer();

  for (int c0 = 0; c0 < padded_k; c0 += chunk) {
    const int len = min(chunk, padded_k - c0);  // a multiple of 256: whole vectors and groups
    __syncthreads();                             // the previous chunk is no longer read
    stage_codes<M>(act, m, c0, len, chunk, xs, blocks_s);
    __syncthreads();
    const int nvec = len / kValues;

    for (int64_t g = warp; g < row_groups; g += kGemvWarps) {
      row_pointers<F>(w, out, b, grid, rows_here, g, c0, wrow, prow);
      float acc[M][kRows];
#pragma unroll
      for (int mi = 0; mi < M; ++mi)
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[mi][r] = 0.0f;

      for (int v0 = 0; v0 < nvec; v0 += 32 * U) {
        if (!preloaded) load_vectors<F, U>(wrow, prow, v0, nvec, lane, buf, param);
        preloaded = false;
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int v = v0 + u * 32 + lane;
          if (v >= nvec) break;
          accumulate_vector<F, M>(buf[u], param[u], xs, blocks_s, chunk, v, book, acc);
        }
      }

      add_warp_sums<M, kRows>(acc, g, rows_here, c0 == 0, lane, acc_s);
    }
  }

  __syncthreads();
  for (int64_t i = threadIdx.x; i < units_here * m; i += kGemvThreads) {
    const int64_t j = i / m, mi = i - j * m;
    if (out.swiglu) {
      const int64_t gate_row = out.weight_row(b, 2 * j, grid), up_row = out.weight_row(b, 2 * j + 1, grid);
      out.store_swiglu(mi, b + j * grid, acc_s[2 * j * M + mi] * row_scale<F>(w, out, gate_row, book),
                       acc_s[(2 * j + 1) * M + mi] * row_scale<F>(w, out, up_row, book));
    } else {
      const int64_t row = b + j * grid;
      out.store(mi, row, acc_s[j * M + mi] * row_scale<F>(w, out, row, book));
    }
  }
}

// ---- launches ---------------------------------------------------------------------------------

Codebook codebook_of(DType dtype) {
  Codebook book{};
  if (const Int8Codebook* c = int8_codebook(dtype)) {
    std::memcpy(book.word, c->level, sizeof(book.word));
    book.unit = c->unit;
  }
  return book;
}

// Values per chunk and row: the k of every row at once when it fits, else equal chunks (whole
// 256-value pieces) that do.
int chunk_values(int m_rows, int64_t padded_k) {
  constexpr int64_t kBytesPerBlock = kBlock + int64_t(sizeof(float2));  // 32 codes and their params
  const int64_t fit = int64_t(kXBytes) / m_rows / kBytesPerBlock * kBlock / 256 * 256;
  const int64_t chunks = ceil_div(padded_k, fit);
  return int(ceil_div(ceil_div(padded_k, chunks), 256) * 256);
}

template <Codes F, int M>
void launch_gemv(const ActCodes& act, int m, const QuantParts& w, DType dtype, const GemvOutputs& out, int sm_count,
                 cudaStream_t stream) {
  static const int blocks_per_sm = [] {  // resident blocks per SM, computed once
    BRISK_CUDA_CHECK(cudaFuncSetAttribute(int8_gemv_kernel<F, M>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(kSmemBytes)));
    int b = 0;
    BRISK_CUDA_CHECK(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, int8_gemv_kernel<F, M>, kGemvThreads, kSmemBytes));
    return b > 0 ? b : 1;
  }();
  const int64_t grid = gemv_grid(int64_t(sm_count) * blocks_per_sm, out, M, kRows, kGemvAccFloats);
  const int chunk = chunk_values(M, w.padded_k);
  launch_overlapped(int8_gemv_kernel<F, M>, dim3(unsigned(grid)), dim3(kGemvThreads), kSmemBytes, stream, act, m,
                    w, chunk, codebook_of(dtype), out);
}

template <Codes F>
void quantize_x(const float* x, int m, int k, const ActCodes& act, cudaStream_t stream) {
  const int64_t blocks = int64_t(m) * (act.ld / kBlock);
  launch_overlapped(quantize_x_kernel<F>, dim3(grid_for(blocks, kQuantizeThreads / 32, 1024)), dim3(kQuantizeThreads),
                    0, stream, x, m, k, act);
}

template <Codes F>
void run_codes(const float* x, int m, int k, const QuantParts& w, DType dtype, const GemvOutputs& out,
               int sm_count, const ActCodes& act, cudaStream_t stream) {
  quantize_x<F>(x, m, k, act, stream);
  if (m == 1)
    launch_gemv<F, 1>(act, m, w, dtype, out, sm_count, stream);
  else if (m == 2)
    launch_gemv<F, 2>(act, m, w, dtype, out, sm_count, stream);
  else if (m <= 4)
    launch_gemv<F, 4>(act, m, w, dtype, out, sm_count, stream);
  else
    launch_gemv<F, 8>(act, m, w, dtype, out, sm_count, stream);
}

}  // namespace

bool has_int8_activation_gemv(DType dtype) {
  return dtype == DType::Q8 || dtype == DType::Q4 || dtype == DType::NF4 || dtype == DType::LOG4;
}

size_t int8_activation_bytes(int m, const Tensor& w) {
  const int64_t ld = quant_device_layout(w.dtype, w.dim(0), w.dim(1)).padded_k;
  return size_t(m) * size_t(ld) + size_t(m) * size_t(ld / kBlock) * sizeof(float2);
}

void quantize_activation_blocks(const float* x, int m, int k, int64_t ld, int8_t* codes, float2* blocks,
                                cudaStream_t stream) {
  BRISK_CHECK(ld % kBlock == 0 && ld >= k, "quantize_activation_blocks: ld must be a multiple of 32 and >= k");
  quantize_x<Codes::Int8>(x, m, k, ActCodes{codes, blocks, ld}, stream);  // Int8: codes stay in value order
}

void quant_gemv_int8(const float* x, int m, int k, const Backend::MatmulOutput* targets, int count, bool swiglu,
                     int sm_count, void* scratch, cudaStream_t stream) {
  BRISK_CHECK(m >= 1 && m <= 8, "quant_gemv_int8: m must be in 1..8");
  BRISK_CHECK(count >= 1 && count <= GemvOutputs::kMax, "quant_gemv_int8: 1 to 3 weights");
  BRISK_CHECK(!swiglu || (count == 2 && targets[0].w->shape == targets[1].w->shape),
              "quant_gemv_int8: SwiGLU takes a gate and an up matrix of one shape");
  const Tensor& w = *targets[0].w;
  QuantParts parts{};
  for (int t = 0; t < count; ++t) {
    const Tensor& wt = *targets[t].w;
    BRISK_CHECK(wt.dtype == w.dtype && wt.dim(1) == w.dim(1), "quant_gemv_int8: weights sharing x must share dtype and k");
    const QuantDeviceView view = quant_device_view(wt);
    parts.codes[t] = view.codes;
    parts.params[t] = view.params;
    parts.code_row_bytes = view.code_row_bytes;
    parts.groups = view.groups;
    parts.padded_k = view.padded_k;
  }
  const GemvOutputs out = GemvOutputs::of(targets, count, swiglu);
  const int64_t ld = parts.padded_k;
  auto* base = static_cast<int8_t*>(scratch);
  const ActCodes act{base, reinterpret_cast<float2*>(base + size_t(m) * size_t(ld)), ld};
  switch (w.dtype) {
    case DType::Q8: return run_codes<Codes::Int8>(x, m, k, parts, w.dtype, out, sm_count, act, stream);
    case DType::Q4: return run_codes<Codes::Int4>(x, m, k, parts, w.dtype, out, sm_count, act, stream);
    case DType::NF4:
    case DType::LOG4: return run_codes<Codes::Codebook4>(x, m, k, parts, w.dtype, out, sm_count, act, stream);
    default: BRISK_CHECK(false, "quant_gemv_int8: " + std::string(dtype_name(w.dtype)) + " has no int8 GEMV");
  }
}

}  // namespace brisk::cuda
