// Shared pieces of the CUDA backend: checked calls, launch helpers, a growable scratch buffer.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace brisk::cuda {

std::string cuda_error_text(cudaError_t status);  // "cudaErrorMemoryAllocation: out of memory"

// Every CUDA runtime call goes through this: a failure is a broken invariant (file:line + text).
#define BRISK_CUDA_CHECK(expr)                                                          \
  do {                                                                                  \
    const cudaError_t brisk_cuda_status_ = (expr);                                      \
    if (brisk_cuda_status_ != cudaSuccess)                                              \
      ::brisk::check_failed(__FILE__, __LINE__, #expr,                                  \
                            ::brisk::cuda::cuda_error_text(brisk_cuda_status_));        \
  } while (0)

// After each kernel launch: catches bad launch configurations at the call that made them.
#define BRISK_CUDA_LAUNCH_CHECK() BRISK_CUDA_CHECK(cudaGetLastError())

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over n items: enough to fill the GPU, no more than needed.
inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 4096) {
  int64_t blocks = ceil_div(n, threads);
  if (blocks < 1) blocks = 1;
  return unsigned(blocks < max_blocks ? blocks : max_blocks);
}

// The largest power of two (capped at 256) dividing an address: what cuBLASLt may assume.
inline uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && (a % align) != 0) align /= 2;
  return align;
}

// Programmatic dependent launch (sm_90): a kernel launched through launch_overlapped may start
// while the previous kernel in the stream is still running. It must call wait_for_producer()
// in every block before it reads or writes anything another kernel touches (only constant data,
// such as weights, and the step's uploaded inputs -- positions, slots, block tables, which a
// stream copy wrote before the step's first kernel -- may be fetched before), and it calls
// let_dependents_launch() first so that the next kernel may do the same. Both are no-ops in a
// kernel launched the ordinary way.
// BRISK_PDL=0 turns the overlap off (for A/B measurements).
bool overlapped_launches_enabled();

#ifdef __CUDACC__
__device__ __forceinline__ void let_dependents_launch() { asm volatile("griddepcontrol.launch_dependents;"); }
__device__ __forceinline__ void wait_for_producer() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

template <class... Params, class... Args>
void launch_overlapped(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes,
                       cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  cudaLaunchAttribute overlap{};
  overlap.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &overlap;
  config.numAttrs = overlapped_launches_enabled() ? 1 : 0;
  BRISK_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

// The largest of every thread's non-negative partial (|x| maxima) over a block of kThreads
// threads, returned to all of them. Call once per kernel: its shared slots are not reset.
template <int kThreads>
__device__ __forceinline__ float block_absmax(float partial) {
  static_assert(kThreads % 32 == 0, "whole warps");
  __shared__ float warp_max[kThreads / 32];
#pragma unroll
  for (int off = 16; off > 0; off /= 2) partial = fmaxf(partial, __shfl_xor_sync(0xffffffffu, partial, off));
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = partial;
  __syncthreads();
  float absmax = 0.0f;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) absmax = fmaxf(absmax, warp_max[w]);
  return absmax;
}
#endif

// A device buffer that only grows. An outgrown buffer is kept until the backend goes away, not
// freed: a recorded pass (CUDA graph) may still name it, and kernels already queued may read it.
// Growth doubles, so the kept buffers add up to less than the current one.
class Scratch {
 public:
  // zeroed: memory is zero-filled when (re)allocated, for users that leave it zero after use.
  explicit Scratch(cudaStream_t stream, bool zeroed = false) : stream_(stream), zeroed_(zeroed) {}
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get(size_t bytes);

 private:
  cudaStream_t stream_;
  bool zeroed_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  std::vector<void*> outgrown_;
};

}  // namespace brisk::cuda
