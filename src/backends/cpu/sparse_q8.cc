#include "backends/cpu/sparse_q8.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/quant_blocks.h"

namespace brisk::cpu {

namespace {

constexpr int64_t kGroup = quant_kernels::kGroupValues;  // inputs per mask
constexpr int64_t kRows = kSparseRowGroup;
constexpr size_t kScalesBytes = 64;                        // 8 fp32 scales, padded to a line
static_assert(kRows == quant_kernels::kDecodeRows && kRows * 8 == 64, "8 masks fill one line");

int64_t groups_of(const Tensor& w) { return int64_t(row_bytes(w.dtype, w.dim(1)) / sizeof(BlockQ8)) * 256 / kGroup; }

// Row r's blocks (contiguous: a row of a row-major Q8 matrix).
const BlockQ8* row_blocks(const Tensor& w, int64_t r) {
  return reinterpret_cast<const BlockQ8*>(static_cast<const uint8_t*>(w.data) + size_t(r) * row_bytes(w.dtype, w.dim(1)));
}

// The mask of group g of row r (0 past the last row).
uint64_t mask_of(const Tensor& w, int64_t r, int64_t g) {
  if (r >= w.dim(0)) return 0;
  const BlockQ8& b = row_blocks(w, r)[g * kGroup / 256];
  uint64_t mask = 0;
  for (int64_t j = 0; j < kGroup; ++j) mask |= uint64_t(b.q[(g * kGroup + j) % 256] != 0) << j;
  return mask;
}

int64_t count_nonzeros(const Tensor& w) {
  const int64_t blocks = groups_of(w) * kGroup / 256;
  int64_t total = 0;
  for (int64_t r = 0; r < w.dim(0); ++r) {
    const BlockQ8* b = row_blocks(w, r);
    for (int64_t i = 0; i < blocks; ++i)
      for (int j = 0; j < 256; ++j) total += b[i].q[j] != 0;
  }
  return total;
}

int64_t row_groups_of(const Tensor& w) { return (w.dim(0) + kRows - 1) / kRows; }

size_t layout_bytes(const Tensor& w, int64_t nonzeros) {
  const int64_t rg = row_groups_of(w);
  const size_t head = (sizeof(SparseQ8Header) + size_t(rg) * 8 + 63) / 64 * 64;
  // Per row group: the scales line, a masks line per input group; then the codes and one load of slack.
  return head + size_t(rg) * (kScalesBytes + size_t(groups_of(w)) * 64) + size_t(nonzeros) + 64;
}

}  // namespace

bool sparse_q8_supported() {
  const CpuFeatures& f = cpu_features();
  return f.avx512f && f.avx512bw && f.avx512vnni && f.avx512vbmi2;
}

SparseQ8Plan plan_sparse_q8(const Tensor& w) {
  SparseQ8Plan plan;
  if (w.dtype != DType::Q8 || w.rank() != 2 || w.block_order != BlockOrder::RowMajor || !sparse_q8_supported())
    return plan;
  plan.nonzeros = count_nonzeros(w);
  plan.bytes = layout_bytes(w, plan.nonzeros);
  plan.worthwhile = double(plan.nonzeros) <= (1 - kSparseMinZeroFraction) * double(w.dim(0) * w.dim(1));
  return plan;
}

void pack_sparse_q8(const Tensor& w, const SparseQ8Plan& plan, void* out) {
  BRISK_CHECK(w.dtype == DType::Q8 && w.rank() == 2 && w.block_order == BlockOrder::RowMajor,
              "pack_sparse_q8: a row-major Q8 matrix");
  const int64_t n = w.dim(0), groups = groups_of(w), rg = row_groups_of(w);
  SparseQ8Header h{};
  h.total_bytes = plan.bytes;
  h.groups = uint64_t(groups);
  h.nonzeros = uint64_t(plan.nonzeros);
  h.row_groups = uint64_t(rg);
  auto* base = static_cast<uint8_t*>(out);
  std::memset(base, 0, h.total_bytes);
  std::memcpy(base, &h, sizeof(h));
  auto* offsets = reinterpret_cast<uint64_t*>(base + sizeof(h));
  size_t at = (sizeof(SparseQ8Header) + size_t(rg) * 8 + 63) / 64 * 64;
  for (int64_t q = 0; q < rg; ++q) {
    offsets[q] = at;
    for (int64_t i = 0; i < kRows && q * kRows + i < n; ++i)
      std::memcpy(base + at + 4 * size_t(i), &row_blocks(w, q * kRows + i)[0].scale, 4);
    at += kScalesBytes;
    for (int64_t g = 0; g < groups; ++g) {
      auto* masks = reinterpret_cast<uint64_t*>(base + at);
      at += 64;
      for (int64_t i = 0; i < kRows; ++i) {
        const int64_t r = q * kRows + i;
        masks[i] = mask_of(w, r, g);
        for (int64_t j = 0; j < kGroup; ++j)
          if (masks[i] >> j & 1) base[at++] = uint8_t(row_blocks(w, r)[g * kGroup / 256].q[(g * kGroup + j) % 256]);
      }
    }
  }
  BRISK_CHECK(at + 64 == h.total_bytes, "pack_sparse_q8: layout size mismatch");
}

const SparseQ8Header& sparse_q8_header(const Tensor& w) {
  BRISK_CHECK(w.block_order == BlockOrder::SparseRows, "sparse_q8_header: not a sparse layout");
  return *static_cast<const SparseQ8Header*>(w.data);
}

const uint8_t* sparse_q8_row_group(const Tensor& w, int64_t r) {
  const auto* base = static_cast<const uint8_t*>(w.data);
  const auto* offsets = reinterpret_cast<const uint64_t*>(base + sizeof(SparseQ8Header));
  return base + offsets[r / kRows];
}

}  // namespace brisk::cpu
