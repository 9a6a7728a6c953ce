// Warp-level tensor-core and shared-memory copy primitives shared by the kernels that use them
// (PTX ISA: mma.m16n8k16 / m16n8k32, ldmatrix, cp.async). Fragment layouts, with g = lane / 4 and
// t = lane % 4: the A operand (16 x K, row-major) is four 32-bit registers, a0 = row g and a1 =
// row g + 8 at bytes 4t..4t+3 of the first half of K, a2 / a3 the same rows in the second half;
// B (K x 8) is two registers, column g at bytes 4t..4t+3 of each half; C (16 x 8) is c0, c1 at
// row g, columns 2t and 2t + 1, and c2, c3 at row g + 8. Byte for byte this is one layout for
// bf16 (K = 16) and int8 (K = 32), so ldmatrix serves both.
#pragma once

#include <cstdint>

namespace brisk::cuda {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

// Four 8x8 matrices of 16-bit elements (8 rows of 16 bytes each); lanes 8i..8i+7 give the row
// addresses of matrix i, and register i of lane l holds bytes 4(l % 4)..+3 of its row l / 4.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}

// The same, each matrix transposed on the way (e.g. V stored [key][dim], needed as K x N).
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}

// c[16x8] += a[16x16] * b[16x8] in bf16 with fp32 sums.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// d[16x8] = a[16x32] * b[32x8] in signed int8 with exact int32 sums (a fresh product, no c).
__device__ __forceinline__ void mma_s8(int (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%10, %10, %10, %10};\n"
      : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0));
}

// 16 bytes global -> shared, asynchronously (both 16-byte aligned); 4 bytes for the small ones.
__device__ __forceinline__ void copy_async16(void* smem, const void* global) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_address(smem)), "l"(global));
}
__device__ __forceinline__ void copy_async4(void* smem, const void* global) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(smem_address(smem)), "l"(global));
}
__device__ __forceinline__ void copy_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most `Pending` of the committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void copy_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(Pending) : "memory");
}
__device__ __forceinline__ void copy_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

}  // namespace brisk::cuda

// Hopper's warpgroup MMA (PTX ISA 9.7.15, sm_90a only: guard callers with
// BRISK_HAS_WGMMA): four warps together compute D[64 x N] (+)= A[64 x 16] B[16 x N], A from
// registers -- warp w of the group holds rows 16w..16w+15 in the mma.m16n8k16 A layout above --
// and B from shared memory through a matrix descriptor. D is N / 2 fp32 registers per thread:
// d[4j .. 4j + 3] is the mma C layout above for columns 8j..8j+7. The instruction runs
// asynchronously: its registers (A and D) must not be touched until a wait covers it.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define BRISK_HAS_WGMMA 1
#endif

namespace brisk::cuda {

// A K-major B operand without swizzling, in 8 x 8 "core matrices" (8 rows of 16 contiguous bytes,
// 128 bytes each): `k_stride` bytes from one core matrix to the next along K, `n_stride` bytes from
// one group of 8 rows (N) to the next. Addresses and strides are multiples of 16.
__device__ __forceinline__ uint64_t wgmma_descriptor(const void* smem, uint32_t k_stride, uint32_t n_stride) {
  const uint64_t address = smem_address(smem);
  return ((address & 0x3FFFFu) >> 4) | (uint64_t((k_stride >> 4) & 0x3FFFu) << 16) |
         (uint64_t((n_stride >> 4) & 0x3FFFu) << 32);  // bits 62-63 (swizzle) 0: none
}

#if defined(BRISK_HAS_WGMMA)
// Makes this thread's earlier writes to shared memory (stores, completed cp.async) visible to the
// wgmma that read it (they read through the async proxy).
__device__ __forceinline__ void fence_shared_for_wgmma() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
// Waits until at most `Pending` committed groups of this warpgroup's wgmma are still running.
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(Pending) : "memory");
}
// Ties registers to this point of the program: the compiler may neither reuse them before it
// (they are still read by a running wgmma) nor read them earlier (a running wgmma writes them).
template <int N>
__device__ __forceinline__ void wgmma_hold(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void wgmma_hold(uint32_t (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// d[64 x 64] = a[64 x 16] * b[16 x 64] (+ d when accumulate != 0), bf16 inputs, fp32 sums.
__device__ __forceinline__ void wgmma_m64n64k16_bf16(float (&d)[32], const uint32_t (&a)[4], uint64_t b,
                                                    int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}
#endif

}  // namespace brisk::cuda
