// Sparse int8 weights on the CPU (issue 22): a Q8 matrix with many exact zeros (pruned, then
// quantized: GPTQ and RTN keep the zeros) is stored at upload in a bitmask layout that holds only
// the non-zero codes, so decode, which is bound by the bytes it reads, reads fewer. The integer
// tiles widen each 64-input group back with one byte expand (AVX-512 VBMI2) and then run exactly
// the dense Q8 tile's arithmetic: results are bit-identical to the dense layout's.
//
// Layout (BlockOrder::SparseRows): a 64-byte SparseQ8Header, the byte offset of each group of 8
// rows (uint64, from the header's start), then the groups of 8 rows, each one sequential stream
// (as BlockOrder::Interleaved8 makes the dense rows: the hardware prefetchers follow one stream
// per thread, not 16): the 8 fp32 row scales (64 bytes with padding), then per 64 inputs g the 8
// rows' masks (bit j of a row's mask: input 64 g + j is non-zero) followed by the 8 rows'
// non-zero codes, one row after the other. (All masks first, then all codes -- two streams, and
// no mask load waiting on a code count -- measured slower: 0.49x / 0.65x / 0.78x dense w8 at
// 50 / 70 / 90% against this layout's 0.79x / 1.19x / 2.16x.) Rows past n are empty. A 64-byte
// load at any code stays in the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdint>

#include "backends/cpu/matmul_quant_kernels.h"
#include "core/tensor.h"

namespace brisk::cpu {

struct SparseQ8Header {
  uint64_t total_bytes;   // the whole layout, header included
  uint64_t groups;        // masks per row: the padded inputs / 64
  uint64_t nonzeros;      // non-zero codes in the matrix
  uint64_t row_groups;    // groups of 8 rows: ceil(n / 8)
  uint64_t reserved[4];
};
static_assert(sizeof(SparseQ8Header) == kSparseRowsHeaderBytes && offsetof(SparseQ8Header, total_bytes) == 0);
constexpr int64_t kSparseRowGroup = 8;  // rows per stream (= quant_kernels::kDecodeRows)

// From this fraction of zero codes a Q8 matrix is stored sparse (where the CPU can read it).
// Measured (bench/sparse_cpu.sh, tinyllama-1.1b w8, 2 threads, a noisy VM): at 50% zeros the
// sparse layout decoded at 0.79x the dense one (one byte expand per 64 inputs and row costs about
// what the saved bytes do); at 70% 1.2-1.6x and at 90% 2.0-2.4x over three runs.
constexpr double kSparseMinZeroFraction = 0.6;

// Whether this CPU runs the sparse tiles (AVX-512 VNNI and VBMI2).
bool sparse_q8_supported();
// One pass over a row-major Q8 matrix's codes: its non-zeros, its size in the sparse layout, and
// whether it goes there (at least kSparseMinZeroFraction zeros). Other tensors, and CPUs without
// the tiles: not worthwhile, nothing counted.
struct SparseQ8Plan {
  int64_t nonzeros = 0;
  size_t bytes = 0;
  bool worthwhile = false;
};
SparseQ8Plan plan_sparse_q8(const Tensor& w);
// Writes the layout (plan.bytes bytes, 64-byte aligned) of row-major Q8 w, planned for it.
void pack_sparse_q8(const Tensor& w, const SparseQ8Plan& plan, void* out);
const SparseQ8Header& sparse_q8_header(const Tensor& w);
// Where the group of 8 rows holding row r starts.
const uint8_t* sparse_q8_row_group(const Tensor& w, int64_t r);

namespace quant_kernels {
// The tiles over the sparse layout (w: a group of 8 rows; ldw: the tile's first row in it;
// block_stride unused), with the dense Q8 set's activation preparation. Null where
// sparse_q8_supported() is false.
const Int8KernelSet* avx512_sparse_q8_kernels();
}  // namespace quant_kernels

}  // namespace brisk::cpu
