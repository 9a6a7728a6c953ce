// Test helper: a batch of sequences laid out in a paged KV pool with shuffled block tables, so
// attention kernels are checked against the reference on the block-table path, not an identity.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "ops/backend.h"
#include "ops/reference.h"

namespace brisk {

struct PagedBatch {
  std::vector<SequenceSpan> spans;
  std::vector<int32_t> tables, positions, slots;
  int64_t n_rows = 0, n_blocks = 0, max_rows = 0, max_keys = 0, block_size = 16;

  // The batch with its arrays in host memory (the CPU backend and the reference read these).
  AttentionBatch host() const {
    AttentionBatch b;
    b.seqs = b.host_seqs = spans.data();
    b.block_tables = b.host_block_tables = tables.data();
    b.n_seqs = int64_t(spans.size());
    b.n_rows = n_rows;
    b.block_size = block_size;
    b.max_rows = max_rows;
    b.max_keys = max_keys;
    return b;
  }
  // Every slot a sequence may attend: the others are left poisoned by the caller.
};

// seqs: (rows, first_pos) per sequence. Blocks are handed out in a random order from a pool
// with `spare` unused blocks.
inline PagedBatch make_paged_batch(const std::vector<std::pair<int64_t, int64_t>>& seqs,
                                   std::mt19937& rng, int64_t spare = 3, int64_t block_size = 16) {
  PagedBatch b;
  b.block_size = block_size;
  int64_t needed = 0;
  for (auto [rows, first] : seqs) needed += (first + rows + block_size - 1) / block_size;
  b.n_blocks = needed + spare;
  std::vector<int32_t> order(size_t(b.n_blocks));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  size_t next = 0;
  for (auto [rows, first] : seqs) {
    const int64_t keys = first + rows, blocks = (keys + block_size - 1) / block_size;
    b.spans.push_back({int32_t(b.n_rows), int32_t(rows), int32_t(first), int32_t(b.tables.size())});
    for (int64_t i = 0; i < blocks; ++i) b.tables.push_back(order[next++]);
    const int32_t* table = b.tables.data() + b.spans.back().table_offset;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t p = first + r;
      b.positions.push_back(int32_t(p));
      b.slots.push_back(int32_t(table[p / block_size] * block_size + p % block_size));
    }
    b.n_rows += rows;
    b.max_rows = std::max(b.max_rows, rows);
    b.max_keys = std::max(b.max_keys, keys);
  }
  return b;
}

// Fills the slots holding positions 0..first_pos+rows-1 of every sequence with values from
// `fill`; every other slot of the pool keeps NaN so that reading it poisons the output.
template <class Fill>
std::vector<float> make_pool(const PagedBatch& b, int64_t row_width, Fill fill) {
  std::vector<float> pool(size_t(b.n_blocks * b.block_size * row_width), NAN);
  for (const SequenceSpan& s : b.spans)
    for (int64_t p = 0; p < s.first_pos + s.n_rows; ++p) {
      const int64_t slot = b.tables[size_t(s.table_offset + p / b.block_size)] * b.block_size + p % b.block_size;
      for (int64_t i = 0; i < row_width; ++i) pool[size_t(slot * row_width + i)] = fill();
    }
  return pool;
}

// fp32 pools (make_pool) stored as `dtype` through ref::store_kv, every slot; a NaN slot stays
// poisoned (NaN bf16 values, or a NaN scale for int8/fp8).
struct HostKv {
  HostKv(const HostKv&) = delete;  // pools points into the vectors
  std::vector<float> k, v;  // bytes of the pools, in floats (as Buffer holds them)
  std::vector<float> k_scales, v_scales;
  KvPools pools;

  HostKv(const std::vector<float>& k32, const std::vector<float>& v32, int64_t n_kv_heads, int64_t head_dim,
         KvDtype dtype) {
    const int64_t row = n_kv_heads * head_dim, slots = int64_t(k32.size()) / row;
    const size_t floats = (size_t(slots * row) * kv_element_bytes(dtype) + 3) / 4;
    k.assign(floats, 0.0f);
    v.assign(floats, 0.0f);
    k_scales.assign(size_t(slots * n_kv_heads), 0.0f);
    v_scales = k_scales;
    pools = KvPools{dtype, k.data(), v.data(), k_scales.data(), v_scales.data(), n_kv_heads, head_dim};
    if (!kv_has_scales(dtype)) pools.k_scales = pools.v_scales = nullptr;
    std::vector<int32_t> all(static_cast<size_t>(slots));
    std::iota(all.begin(), all.end(), 0);
    // k and v travel as one [slots, 2, row] source, as models pass them (src_stride = 2 * row).
    std::vector<float> kv(size_t(slots * 2 * row));
    for (int64_t s = 0; s < slots; ++s) {
      std::copy_n(k32.begin() + s * row, row, kv.begin() + s * 2 * row);
      std::copy_n(v32.begin() + s * row, row, kv.begin() + s * 2 * row + row);
    }
    ref::store_kv(kv.data(), kv.data() + row, slots, 2 * row, all.data(), pools);
  }
};

}  // namespace brisk
