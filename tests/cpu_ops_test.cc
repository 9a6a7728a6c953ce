// CPU backend ops other than matmul against the scalar references, on random shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backends/cpu/cpu_backend.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "ops/reference.h"
#include "paged_batch.h"

namespace brisk {
namespace {

std::vector<float> random_floats(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
}

struct AttentionCase {
  std::vector<std::pair<int64_t, int64_t>> seqs;  // (rows, first_pos) per sequence
  int64_t n_heads, n_kv_heads, head_dim;
};

// A case's paged batch, random queries and fp32 key/value pools.
struct AttentionInputs {
  PagedBatch batch;
  std::vector<float> q, k, v;
  float scale;
};

AttentionInputs attention_inputs(const AttentionCase& c, std::mt19937& rng) {
  AttentionInputs in{make_paged_batch(c.seqs, rng), {}, {}, {}, 1.0f / std::sqrt(float(c.head_dim))};
  const int64_t kv_row = c.n_kv_heads * c.head_dim;
  std::normal_distribution<float> dist;
  in.q = random_floats(size_t(in.batch.n_rows * c.n_heads * c.head_dim), rng);
  in.k = make_pool(in.batch, kv_row, [&] { return dist(rng); });
  in.v = make_pool(in.batch, kv_row, [&] { return dist(rng); });
  return in;
}

const KvDtype kAllKvDtypes[] = {KvDtype::F32, KvDtype::BF16, KvDtype::I8, KvDtype::F8};

std::string kv_name(KvDtype t) { return std::string(kv_dtype_name(t)); }

TEST(CpuOps, AttentionMatchesReference) {
  std::mt19937 rng(5);
  const AttentionCase cases[] = {
      {{{1, 0}}, 4, 4, 64},     {{{1, 300}}, 32, 4, 64},  {{{7, 0}}, 6, 2, 64},
      {{{17, 40}}, 8, 1, 17},   {{{5, 3}}, 40, 2, 80},    {{{64, 0}}, 12, 12, 128},
      {{{3, 1000}}, 4, 2, 96},  {{{2, 5}}, 1, 1, 1},
      // Few-query units (at most 8 query vectors): GQA groups of 3 and 7, two causal rows in one unit.
      {{{1, 50}}, 6, 2, 64},    {{{1, 20}}, 14, 2, 128}, {{{2, 9}}, 6, 2, 64},
      // Mixed batches: decode rows of different lengths next to prefill chunks.
      {{{1, 37}, {1, 0}, {9, 20}, {1, 129}}, 8, 2, 64},
      {{{33, 0}, {1, 15}, {1, 16}, {4, 60}}, 6, 6, 32},
  };
  for (int threads : {1, 2}) {
    CpuBackend backend(threads);
    for (const auto& c : cases) {
      const auto [b, q, k, v, scale] = attention_inputs(c, rng);
      // Each dtype against the reference on the same stored pools: only the arithmetic differs.
      for (KvDtype dtype : kAllKvDtypes) {
        HostKv kv(k, v, c.n_kv_heads, c.head_dim, dtype);
        std::vector<float> want(q.size()), got(q.size(), NAN);
        ref::attention(q.data(), kv.pools, want.data(), b.host(), c.n_heads, scale);
        backend.attention(q.data(), kv.pools, got.data(), b.host(), c.n_heads, scale);
        expect_close(got, want, 2e-5, "attention kv=" + kv_name(dtype) + " seqs=" + std::to_string(c.seqs.size()) +
                                          " rows=" + std::to_string(b.n_rows) + " heads=" + std::to_string(c.n_heads) +
                                          " hd=" + std::to_string(c.head_dim));
      }
    }
  }
}

// Sliding windows (a query sees its last `window` keys) and Gemma-2's score soft-capping, alone
// and together, and encoders' bidirectional mask, on decode rows and prefill units, against the
// reference.
TEST(CpuOps, WindowedSoftCappedAttentionMatchesReference) {
  std::mt19937 rng(12);
  const AttentionCase cases[] = {
      {{{1, 300}}, 8, 2, 64},  {{{40, 0}}, 6, 2, 64},           {{{17, 40}}, 8, 1, 17},
      {{{64, 0}}, 4, 4, 128},  {{{1, 37}, {9, 20}, {1, 5}}, 8, 2, 64}, {{{5, 3}}, 40, 2, 80},
  };
  const AttentionParams variants[] = {{0.0f, 0.0f, 16}, {0.0f, 5.0f, 0}, {0.0f, 3.0f, 7}, {0.0f, 50.0f, 1},
                                      {0.0f, 0.0f, 0, AttentionMask::Bidirectional}};
  for (int threads : {1, 2}) {
    for (cpu::Bf16Math math : {cpu::Bf16Math::Exact, cpu::Bf16Math::Dot}) {
      CpuBackend backend(threads, math);
      for (const auto& c : cases) {
        const auto [b, q, k, v, scale] = attention_inputs(c, rng);
        for (AttentionParams params : variants) {
          params.scale = 4 * scale;  // scores large enough for the cap to bite
          HostKv kv(k, v, c.n_kv_heads, c.head_dim, KvDtype::F32);
          std::vector<float> want(q.size()), got(q.size(), NAN);
          ref::attention(q.data(), kv.pools, want.data(), b.host(), c.n_heads, params);
          backend.attention(q.data(), kv.pools, got.data(), b.host(), c.n_heads, params);
          const std::string what = "window=" + std::to_string(params.window) + " cap=" + std::to_string(params.softcap) +
                                   " rows=" + std::to_string(b.n_rows) + " hd=" + std::to_string(c.head_dim);
          if (math == cpu::Bf16Math::Exact) {
            expect_close(got, want, 2e-5, what);
          } else {  // bf16 products in prefill units: near the reference, as above
            double err = 0, norm = 0;
            for (size_t i = 0; i < got.size(); ++i) {
              err += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
              norm += double(want[i]) * want[i];
            }
            EXPECT_LT(std::sqrt(err / norm), 1e-2) << what;
          }
        }
      }
    }
  }
}

// --bf16-fast: prefill units (more than 8 query vectors, of sequences with more than
// kDecodeOrderRows rows in the call) round queries, keys, probabilities and values to bf16 (fp32
// sums), so they land near the reference, not on it: bounded by relative L2 (measured
// 0.9e-3..3.3e-3 here; the CUDA tensor-core prefill 2.4e-3..3.3e-3 for the same rounding).
TEST(CpuOps, Bf16DotAttentionStaysNearReference) {
  std::mt19937 rng(8);
  const AttentionCase cases[] = {
      {{{19, 0}}, 6, 2, 64},    {{{17, 40}}, 8, 1, 17}, {{{21, 3}}, 40, 2, 80}, {{{64, 0}}, 12, 12, 128},
      {{{18, 1000}}, 8, 1, 96}, {{{33, 0}, {1, 15}, {4, 60}}, 6, 6, 32},
  };
  CpuBackend exact(2), fast(2, cpu::Bf16Math::Dot);
  for (const auto& c : cases) {
    const auto [b, q, k, v, scale] = attention_inputs(c, rng);
    for (KvDtype dtype : kAllKvDtypes) {
      HostKv kv(k, v, c.n_kv_heads, c.head_dim, dtype);
      std::vector<float> want(q.size()), got(q.size(), NAN), same(q.size(), NAN);
      ref::attention(q.data(), kv.pools, want.data(), b.host(), c.n_heads, scale);
      fast.attention(q.data(), kv.pools, got.data(), b.host(), c.n_heads, scale);
      exact.attention(q.data(), kv.pools, same.data(), b.host(), c.n_heads, scale);
      double err = 0, norm = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        err += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
        norm += double(want[i]) * want[i];
      }
      const std::string what = kv_name(dtype) + " hd=" + std::to_string(c.head_dim) + " heads=" +
                               std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads);
      EXPECT_LT(std::sqrt(err / norm), 1e-2) << what;
      if (cpu_features().avx512bf16) {
        EXPECT_NE(got, same) << what << ": the bf16 path did not run";
      }
    }
  }
}

// What storing costs: attention over a bf16/int8/fp8 cache stays near the fp32 one (outputs are
// convex mixes of values ~N(0, 1), so absolute errors are the measure; the bounds are about 1.5x
// the measured worst: 0.006, 0.022, 0.14).
TEST(CpuOps, QuantizedKvAttentionStaysNearF32) {
  std::mt19937 rng(11);
  CpuBackend backend(2);
  const PagedBatch b = make_paged_batch({{9, 120}, {1, 300}}, rng);
  const int64_t n_heads = 6, n_kv_heads = 2, head_dim = 64, kv_row = n_kv_heads * head_dim;
  std::normal_distribution<float> dist;
  auto q = random_floats(size_t(b.n_rows * n_heads * head_dim), rng, 2.0f);
  auto k = make_pool(b, kv_row, [&] { return dist(rng); });
  auto v = make_pool(b, kv_row, [&] { return dist(rng); });
  HostKv f32(k, v, n_kv_heads, head_dim, KvDtype::F32);
  std::vector<float> exact(q.size());
  backend.attention(q.data(), f32.pools, exact.data(), b.host(), n_heads, 0.125f);
  const std::pair<KvDtype, double> bounds[] = {{KvDtype::BF16, 0.01}, {KvDtype::I8, 0.035}, {KvDtype::F8, 0.2}};
  for (auto [dtype, bound] : bounds) {
    HostKv kv(k, v, n_kv_heads, head_dim, dtype);
    std::vector<float> got(q.size());
    backend.attention(q.data(), kv.pools, got.data(), b.host(), n_heads, 0.125f);
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - exact[i])));
    EXPECT_LT(worst, bound) << kv_name(dtype);
    EXPECT_GT(worst, 0.0) << kv_name(dtype) << " stored exactly? the pool was not converted";
  }
}

// With one key the output is that key's value row: every code of every dtype (the vector
// conversions for the first 16-multiple, the scalar tail after) must read back as
// kv_dequantize_row reads it.
TEST(CpuOps, AttentionReadsEveryCode) {
  CpuBackend backend(1);
  std::mt19937 rng(3);
  const PagedBatch b = make_paged_batch({{1, 0}}, rng, 0);
  for (KvDtype dtype : kAllKvDtypes) {
    const int64_t head_dim = 254;  // e4m3 has 254 non-NaN codes; int8 uses 255 (-127..127)
    const size_t elem = kv_element_bytes(dtype), slots = size_t(b.n_blocks * b.block_size);
    std::vector<uint8_t> k(slots * size_t(head_dim) * elem), v = k;
    for (int64_t i = 0; i < head_dim; ++i) {
      uint8_t* at = v.data() + (size_t(b.slots[0]) * size_t(head_dim) + size_t(i)) * elem;
      if (dtype == KvDtype::F8) *at = uint8_t(i < 127 ? i : i + 1);  // skip 0x7f
      else if (dtype == KvDtype::I8) *at = uint8_t(int8_t(i - 127));
      else if (dtype == KvDtype::BF16) { const uint16_t h = f32_to_bf16(float(i - 100) * 0.37f); std::memcpy(at, &h, 2); }
      else { const float f = float(i - 100) * 0.37f; std::memcpy(at, &f, 4); }
    }
    std::vector<float> scales(slots, 0.75f);
    const KvPools pools{dtype, k.data(), v.data(), scales.data(), scales.data(), 1, head_dim};
    std::vector<float> q(size_t(head_dim), 1.0f), got(q.size()), want(q.size());
    backend.attention(q.data(), pools, got.data(), b.host(), 1, 1.0f);
    kv_dequantize_row(v.data() + size_t(b.slots[0]) * size_t(head_dim) * elem, head_dim, dtype,
                      kv_has_scales(dtype) ? 0.75f : 1.0f, want.data());
    EXPECT_EQ(got, want) << kv_name(dtype);
  }
}

TEST(CpuOps, StoreKvWritesSlots) {
  std::mt19937 rng(7);
  CpuBackend backend(2);
  const PagedBatch b = make_paged_batch({{5, 3}, {1, 40}, {20, 0}}, rng);
  const int64_t n_kv_heads = 3, head_dim = 4, width = n_kv_heads * head_dim, stride = 3 * width;
  const int64_t slots = b.n_blocks * b.block_size;
  auto src = random_floats(size_t(b.n_rows * stride), rng);
  src[7] = 0.0f;  // an all-zero head row must store zeros, not NaN
  std::fill_n(src.begin() + stride, head_dim, 0.0f);
  for (KvDtype dtype : kAllKvDtypes) {
    // The backend writes exactly what the reference writes, every byte and scale.
    HostKv want(std::vector<float>(size_t(slots * width)), std::vector<float>(size_t(slots * width)), n_kv_heads,
                head_dim, dtype);
    HostKv got(std::vector<float>(size_t(slots * width)), std::vector<float>(size_t(slots * width)), n_kv_heads,
               head_dim, dtype);
    ref::store_kv(src.data(), src.data() + width, b.n_rows, stride, b.slots.data(), want.pools);
    backend.store_kv(src.data(), src.data() + width, b.n_rows, stride, b.slots.data(), got.pools);
    EXPECT_EQ(0, std::memcmp(got.k.data(), want.k.data(), got.k.size() * 4)) << kv_name(dtype);
    EXPECT_EQ(0, std::memcmp(got.v.data(), want.v.data(), got.v.size() * 4)) << kv_name(dtype);
    EXPECT_EQ(got.k_scales, want.k_scales) << kv_name(dtype);
    // Row r of k landed in its slot, within the dtype's rounding.
    const double tol = dtype == KvDtype::F32 ? 0 : dtype == KvDtype::BF16 ? 4e-3 : dtype == KvDtype::I8 ? 1e-2 : 7e-2;
    for (int64_t r : {int64_t(0), int64_t(1), int64_t(4), b.n_rows - 1})
      for (int64_t h = 0; h < n_kv_heads; ++h) {
        float row[head_dim], absmax = 0;
        const int64_t head_row = int64_t(b.slots[size_t(r)]) * n_kv_heads + h;
        kv_dequantize_row(reinterpret_cast<const char*>(want.k.data()) + head_row * head_dim * kv_element_bytes(dtype),
                          head_dim, dtype, kv_has_scales(dtype) ? want.k_scales[size_t(head_row)] : 1.0f, row);
        const float* x = src.data() + r * stride + h * head_dim;
        for (int64_t i = 0; i < head_dim; ++i) absmax = std::max(absmax, std::fabs(x[i]));
        for (int64_t i = 0; i < head_dim; ++i)
          ASSERT_NEAR(row[i], x[i], tol * absmax) << kv_name(dtype) << " row " << r << " head " << h;
      }
  }
}

TEST(CpuOps, NormsRopeActivationsMatchReference) {
  std::mt19937 rng(6);
  CpuBackend backend(2);
  for (int64_t rows : {1, 3, 33})
    for (int64_t d : {1, 17, 384}) {
      auto x = random_floats(size_t(rows * d), rng, 3.0f);
      auto w = random_floats(size_t(d), rng), b = random_floats(size_t(d), rng);
      std::vector<float> want(x.size()), got(x.size());
      ref::rms_norm(x.data(), w.data(), rows, d, 1e-5f, want.data());
      backend.rms_norm(x.data(), w.data(), rows, d, 1e-5f, got.data());
      expect_close(got, want, 1e-6, "rms_norm");
      // The residual add and the norm, written over h as the models call it.
      auto h = random_floats(x.size(), rng), sum = x, got_h = h;
      ref::add(sum.data(), h.data(), rows * d);
      ref::rms_norm(sum.data(), w.data(), rows, d, 1e-5f, want.data());
      std::vector<float> got_sum = x;
      backend.add_rms_norm(got_sum.data(), got_h.data(), w.data(), rows, d, 1e-5f, got_h.data());
      expect_close(got_sum, sum, 0, "add_rms_norm sum");
      std::vector<float> added = x;
      backend.add(added.data(), h.data(), rows * d);
      expect_close(added, sum, 0, "add");
      expect_close(got_h, want, 1e-6, "add_rms_norm");
      ref::layer_norm(x.data(), w.data(), b.data(), rows, d, 1e-5f, want.data());
      backend.layer_norm(x.data(), w.data(), b.data(), rows, d, 1e-5f, got.data());
      expect_close(got, want, 1e-6, "layer_norm");
      std::vector<float> gate = x, up = random_floats(x.size(), rng);
      ref::silu_mul(gate.data(), up.data(), want.data(), rows * d);
      backend.silu_mul(gate.data(), up.data(), got.data(), rows * d);
      expect_close(got, want, 1e-6, "silu_mul");
      want = x;
      got = x;
      ref::gelu_tanh(want.data(), rows * d);
      backend.gelu_tanh(got.data(), rows * d);
      expect_close(got, want, 1e-6, "gelu_tanh");
      want = x;
      got = x;
      ref::mul(want.data(), up.data(), rows * d);
      backend.mul(got.data(), up.data(), rows * d);
      expect_close(got, want, 0, "mul");
      want = x;
      got = x;
      ref::scale(want.data(), rows * d, 8.0f);
      backend.scale(got.data(), rows * d, 8.0f);
      expect_close(got, want, 0, "scale");
      want = x;
      got = x;
      ref::soft_cap(want.data(), rows * d, 0.7f);
      backend.soft_cap(got.data(), rows * d, 0.7f);
      expect_close(got, want, 1e-6, "soft_cap");
      want = x;
      got = x;
      ref::gelu_erf(want.data(), rows * d);
      backend.gelu_erf(got.data(), rows * d);
      expect_close(got, want, 0, "gelu_erf");
    }
  // The vector exp's edges: inputs where e^-x over- or underflows, and both sides of zero.
  std::vector<float> edges = {-200.0f, -89.0f, -87.5f, -30.0f, -1e-8f, 0.0f, 1e-8f, 30.0f, 87.5f, 89.0f, 200.0f};
  edges.resize(32, 0.5f);  // two whole vectors
  std::vector<float> up(edges.size(), 1.5f), want(edges.size()), got(edges.size());
  ref::silu_mul(edges.data(), up.data(), want.data(), int64_t(edges.size()));
  backend.silu_mul(edges.data(), up.data(), got.data(), int64_t(edges.size()));
  expect_close(got, want, 1e-6, "silu_mul at the edges");
  want = edges;
  got = edges;
  ref::gelu_tanh(want.data(), int64_t(edges.size()));
  backend.gelu_tanh(got.data(), int64_t(edges.size()));
  expect_close(got, want, 1e-6, "gelu_tanh at the edges");
  want = edges;
  got = edges;
  ref::soft_cap(want.data(), int64_t(edges.size()), 30.0f);
  backend.soft_cap(got.data(), int64_t(edges.size()), 30.0f);
  expect_close(got, want, 1e-6, "soft_cap at the edges");
  const int64_t heads = 3, kv_heads = 1, head_dim = 8, rows = 5, positions = 20;
  auto cos_t = random_floats(size_t(positions * head_dim / 2), rng), sin_t = random_floats(cos_t.size(), rng);
  auto q = random_floats(size_t(rows * heads * head_dim), rng);
  auto k = random_floats(size_t(rows * kv_heads * head_dim), rng);
  std::vector<float> want_q = q, got_q = q, want_k = k, got_k = k;
  const std::vector<int32_t> pos = {7, 0, 19, 3, 3};  // any positions, as a mixed batch has
  ref::rope(want_q.data(), rows, heads, head_dim, pos.data(), cos_t.data(), sin_t.data());
  ref::rope(want_k.data(), rows, kv_heads, head_dim, pos.data(), cos_t.data(), sin_t.data());
  backend.rope(got_q.data(), got_k.data(), rows, heads, kv_heads, head_dim, pos.data(), cos_t.data(),
               sin_t.data());
  expect_close(got_q, want_q, 1e-6, "rope q");
  expect_close(got_k, want_k, 1e-6, "rope k");
}

TEST(CpuOps, GatherRowsConvertsEveryDtype) {
  CpuBackend backend(1);
  const std::vector<float> values = {0.5f, -1.25f, 3.0f, 2.0f, -0.125f, 7.5f};
  std::vector<uint16_t> bf16, f16;
  for (float v : values) {
    bf16.push_back(f32_to_bf16(v));
    f16.push_back(f32_to_f16(v));
  }
  std::vector<float> f32 = values;
  for (Tensor table : {Tensor{f32.data(), DType::F32, {3, 2}}, Tensor{bf16.data(), DType::BF16, {3, 2}},
                       Tensor{f16.data(), DType::F16, {3, 2}}}) {
    const int32_t ids[3] = {2, 0, 2};
    std::vector<float> out(6, 1.0f);
    backend.gather_rows(table, ids, 3, out.data(), Accumulate::No);
    EXPECT_EQ(out, (std::vector<float>{-0.125f, 7.5f, 0.5f, -1.25f, -0.125f, 7.5f}));
    backend.gather_rows(table, ids, 1, out.data(), Accumulate::Yes);
    EXPECT_EQ(out[0], -0.25f);
  }
}

TEST(CpuOps, ResidentWeightsAreExactCopies) {
  std::mt19937 rng(8);
  auto w = random_floats(size_t(300 * 257), rng);
  Tensor host{w.data(), DType::F32, {300, 257}};
  CpuBackend resident(1, cpu::Bf16Math::Exact, WeightPlacement::Resident);
  CpuBackend mapped(1, cpu::Bf16Math::Exact, WeightPlacement::Mapped);
  Tensor a = resident.upload(host), b = mapped.upload(host);
  EXPECT_NE(a.data, host.data);
  EXPECT_EQ(b.data, host.data);
  EXPECT_EQ(0, std::memcmp(a.data, host.data, host.nbytes()));
  EXPECT_EQ(uintptr_t(a.data) % 64, 0u);
}

}  // namespace
}  // namespace brisk
