#include "backends/cpu/cpu_backend.h"

#include "backends/cpu/sparse_q8.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backends/cpu/attention.h"
#include "backends/cpu/layer_ops.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/matmul_quant.h"
#include "core/error.h"
#include "ops/reference.h"

namespace brisk {

Buffer CpuBackend::allocate(size_t n_floats) {
  // 64-byte alignment keeps SIMD loads of activation rows on cache-line boundaries.
  const size_t bytes = (std::max<size_t>(n_floats, 1) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  BRISK_CHECK(p != nullptr, "out of host memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, bytes);
  return Buffer(this, static_cast<float*>(p), n_floats);
}

void CpuBackend::release(float* data) { std::free(data); }

CpuBackend::~CpuBackend() {
  for (const Chunk& c : weight_chunks_) munmap(c.data, c.size);
}

void* CpuBackend::reserve(size_t n_bytes) {
  constexpr size_t kHugePage = 2u << 20, kChunk = 256u << 20, kAlign = 64;
  const size_t bytes = (n_bytes + kAlign - 1) / kAlign * kAlign;
  if (weight_chunks_.empty() || weight_chunks_.back().size - weight_chunks_.back().used < bytes) {
    const size_t size = std::max(kChunk, (bytes + kHugePage - 1) / kHugePage * kHugePage);
    // Over-allocate by one huge page so the chunk can start on a 2 MiB boundary.
    void* raw = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    BRISK_CHECK(raw != MAP_FAILED, "out of memory reserving " + std::to_string(size >> 20) + " MiB for weights");
    auto* aligned = reinterpret_cast<uint8_t*>((uintptr_t(raw) + kHugePage - 1) / kHugePage * kHugePage);
    madvise(aligned, size, MADV_HUGEPAGE);
    weight_chunks_.push_back({static_cast<uint8_t*>(raw), size + kHugePage, size_t(aligned - static_cast<uint8_t*>(raw))});
  }
  Chunk& c = weight_chunks_.back();
  void* p = c.data + c.used;
  c.used += bytes;
  return p;
}

Tensor CpuBackend::upload(const Tensor& host_tensor) {
  if (placement_ == WeightPlacement::Mapped || host_tensor.nbytes() < (64u << 10)) return host_tensor;
  Tensor copy = host_tensor;
  if (const cpu::SparseQ8Plan plan = cpu::plan_sparse_q8(host_tensor); plan.worthwhile) {
    copy.data = reserve(plan.bytes);  // only the non-zero codes: decode reads fewer bytes
    cpu::pack_sparse_q8(host_tensor, plan, copy.data);
    copy.block_order = BlockOrder::SparseRows;
    return copy;
  }
  copy.data = reserve(host_tensor.nbytes());
  if (cpu::interleaves_for_decode(host_tensor)) {
    cpu::interleave_rows(host_tensor, copy.data);
    copy.block_order = BlockOrder::Interleaved8;
  } else {
    std::memcpy(copy.data, host_tensor.data, host_tensor.nbytes());
  }
  return copy;
}

Tensor CpuBackend::upload_matrix(const Tensor& host_tensor) {
  if (placement_ == WeightPlacement::Mapped || bf16_math_ != cpu::Bf16Math::Dot ||
      !cpu::packs_bf16_pairs(host_tensor))
    return upload(host_tensor);
  Tensor copy = host_tensor;
  copy.data = reserve(host_tensor.nbytes());
  cpu::pack_bf16_pairs(host_tensor, copy.data);
  copy.block_order = BlockOrder::Bf16Pairs;
  return copy;
}

void CpuBackend::copy_to_device(float* dst, const float* host_src, size_t n) {
  std::memcpy(dst, host_src, n * sizeof(float));
}

void CpuBackend::copy_to_host(float* host_dst, const float* src, size_t n) {
  if (host_dst != src) std::memcpy(host_dst, src, n * sizeof(float));
}

void CpuBackend::gather_rows(const Tensor& table, const int32_t* ids, int64_t n, float* out,
                             Accumulate accumulate) {
  const int64_t rows = table.dim(0), d = table.dim(1);
  for (int64_t r = 0; r < n; ++r) {
    BRISK_CHECK(ids[r] >= 0 && ids[r] < rows, "gather_rows: id " + std::to_string(ids[r]) + " out of range");
    const size_t base = size_t(ids[r]) * size_t(d);
    float* o = out + r * d;
    if (table.dtype == DType::BF16) {  // the common case, without a dtype switch per element
      const uint16_t* row = static_cast<const uint16_t*>(table.data) + base;
      if (accumulate == Accumulate::Yes)
        for (int64_t i = 0; i < d; ++i) o[i] += bf16_to_f32(row[i]);
      else
        for (int64_t i = 0; i < d; ++i) o[i] = bf16_to_f32(row[i]);
    } else if (accumulate == Accumulate::Yes) {
      for (int64_t i = 0; i < d; ++i) o[i] += load_as_f32(table.data, table.dtype, base + size_t(i));
    } else {
      for (int64_t i = 0; i < d; ++i) o[i] = load_as_f32(table.data, table.dtype, base + size_t(i));
    }
  }
}

void CpuBackend::argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids) {
  for (int64_t r = 0; r < rows; ++r) {
    ids[r] = ref::argmax_row(logits + r * vocab, vocab);  // the host Sampler's greedy choice
  }
}

// The reference itself: the host Sampler's definition, at the cost the host path always had.
void CpuBackend::sample_rows(float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                             const TokenCount* counts, const uint32_t* allowed, int32_t* ids) {
  for (int64_t r = 0; r < rows; ++r)
    ids[r] = ref::sample_row(logits + r * vocab, vocab, params[r], counts, allowed, sample_scratch_);
}

void CpuBackend::copy_2d(const float* src, int64_t src_stride, float* dst, int64_t dst_stride,
                         int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_stride, src + r * src_stride, size_t(cols) * sizeof(float));
}

void CpuBackend::matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
                        float* y) {
  if (is_block_dtype(w.dtype)) return cpu::matmul_quant(x, m, k, w, bias, y, pool_);
  cpu::matmul(x, m, k, w, bias, y, pool_, bf16_math_);
}

void CpuBackend::matmul_same_input(const float* x, int64_t m, int64_t k, std::initializer_list<MatmulOutput> outs) {
  cpu::MatmulTarget targets[4];
  bool float_weights = outs.size() <= 4, quantized = outs.size() <= 4;
  int n = 0;
  for (const MatmulOutput& o : outs) {
    if (n == 4) break;
    float_weights = float_weights && !is_block_dtype(o.w->dtype);
    quantized = quantized && is_block_dtype(o.w->dtype) && o.w->dtype == outs.begin()->w->dtype;
    targets[n++] = {o.w, o.bias, o.y};
  }
  if (float_weights) return cpu::matmul_same_input(x, m, k, targets, n, pool_, bf16_math_);
  if (quantized) return cpu::matmul_quant_same_input(x, m, k, targets, n, pool_);
  Backend::matmul_same_input(x, m, k, outs);
}

void CpuBackend::attention(const float* q, const KvPools& kv, float* out, const AttentionBatch& batch,
                           int64_t n_heads, const AttentionParams& params) {
  cpu::attention(q, kv, out, batch, n_heads, params, bf16_math_, pool_);
}

// Scalar: a step stores one row per token, a sliver of the matmul work around it.
void CpuBackend::store_kv(const float* k, const float* v, int64_t rows, int64_t src_stride,
                          const int32_t* slots, const KvPools& kv) {
  ref::store_kv(k, v, rows, src_stride, slots, kv);
}

void CpuBackend::rms_norm(const float* x, const float* weight, int64_t rows, int64_t d, float eps,
                          float* y) {
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    cpu::rms_norm(x + b * d, weight, e - b, d, eps, y + b * d);
  });
}

void CpuBackend::add_rms_norm(float* x, const float* h, const float* weight, int64_t rows, int64_t d,
                              float eps, float* y) {
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    cpu::add(x + b * d, h + b * d, (e - b) * d);
    cpu::rms_norm(x + b * d, weight, e - b, d, eps, y + b * d);
  });
}

void CpuBackend::layer_norm(const float* x, const float* weight, const float* bias, int64_t rows,
                            int64_t d, float eps, float* y) {
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    ref::layer_norm(x + b * d, weight, bias, e - b, d, eps, y + b * d);
  });
}

void CpuBackend::rope(float* q, float* k, int64_t rows, int64_t n_heads, int64_t n_kv_heads,
                      int64_t head_dim, const int32_t* positions, const float* cos_table,
                      const float* sin_table) {
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    cpu::rope(q + b * n_heads * head_dim, e - b, n_heads, head_dim, positions + b, cos_table, sin_table);
    if (k)
      cpu::rope(k + b * n_kv_heads * head_dim, e - b, n_kv_heads, head_dim, positions + b, cos_table,
                sin_table);
  });
}

void CpuBackend::rope_store_kv(float* q, float* k, const float* v, int64_t rows, int64_t n_heads,
                               const int32_t* positions, const float* cos_table, const float* sin_table,
                               const int32_t* slots, const KvPools& kv) {
  const int64_t n_kv = kv.n_kv_heads, hd = kv.head_dim, kv_row = kv.row();
  pool_.parallel_for(rows, [&](int64_t b, int64_t e) {
    cpu::rope(q + b * n_heads * hd, e - b, n_heads, hd, positions + b, cos_table, sin_table);
    cpu::rope(k + b * kv_row, e - b, n_kv, hd, positions + b, cos_table, sin_table);
    ref::store_kv(k + b * kv_row, v + b * kv_row, e - b, kv_row, slots + b, kv);
  });
}

void CpuBackend::silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { cpu::silu_mul(gate + b, up + b, out + b, e - b); });
}

void CpuBackend::mul(float* x, const float* y, int64_t n) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { cpu::mul(x + b, y + b, e - b); });
}

void CpuBackend::scale(float* x, int64_t n, float s) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { cpu::scale(x + b, e - b, s); });
}

void CpuBackend::soft_cap(float* x, int64_t n, float cap) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { cpu::soft_cap(x + b, e - b, cap); });
}

void CpuBackend::gelu_erf(float* x, int64_t n) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { cpu::gelu_erf(x + b, e - b); });
}

void CpuBackend::gelu_tanh(float* x, int64_t n) {
  pool_.parallel_for(n, [&](int64_t b, int64_t e) { cpu::gelu_tanh(x + b, e - b); });
}

void CpuBackend::add(float* x, const float* y, int64_t n) {
  constexpr int64_t kPiece = 1024;  // below two pieces (a decode row) one thread adds alone
  pool_.parallel_for((n + kPiece - 1) / kPiece, [&](int64_t b, int64_t e) {
    cpu::add(x + b * kPiece, y + b * kPiece, std::min(n, e * kPiece) - b * kPiece);
  });
}

}  // namespace brisk
