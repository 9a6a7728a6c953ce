// Physical limits of this machine, measured in the same run as a benchmark so that every speed
// claim can be stated as a fraction of what the hardware can do (GUIDE rule 10).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/thread_pool.h"

namespace brisk::cpu {

// DRAM read bandwidth: all pool threads read disjoint parts of a 1 GiB buffer (far beyond any
// cache); median of several passes, in bytes read per second / 1e9.
double measure_read_bandwidth_gbps(ThreadPool& pool);

// fp32 FMA throughput with operands in registers only (AVX-512 or AVX2), all pool threads.
double measure_fp32_fma_peak_gflops(ThreadPool& pool);

// AVX-512 BF16 dot-product throughput (_mm512_dpbf16_ps: 32 multiply-adds = 64 flops per
// instruction), registers only, all pool threads. 0 when the CPU lacks AVX512_BF16.
double measure_bf16_dot_peak_gflops(ThreadPool& pool);

namespace detail {
// The timed loops, each compiled for its own ISA (roofline_avx512.cc, roofline_avx2.cc).
// The loops return flops executed; they write a checksum to a sink so no work is optimized away.
uint64_t read_xor_avx512(const void* data, size_t bytes);
uint64_t read_xor_avx2(const void* data, size_t bytes);
double fma_loop_avx512(int64_t iters);
double fma_loop_avx2(int64_t iters);
double bf16_dot_loop_avx512(int64_t iters);
}  // namespace detail

}  // namespace brisk::cpu
