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
