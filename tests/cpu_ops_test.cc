// CPU backend ops other than matmul against the scalar references, on random shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backends/cpu/cpu_backend.h"
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

TEST(CpuOps, AttentionMatchesReference) {
  std::mt19937 rng(5);
  const AttentionCase cases[] = {
      {{{1, 0}}, 4, 4, 64},     {{{1, 300}}, 32, 4, 64},  {{{7, 0}}, 6, 2, 64},
      {{{17, 40}}, 8, 1, 17},   {{{5, 3}}, 40, 2, 80},    {{{64, 0}}, 12, 12, 128},
      {{{3, 1000}}, 4, 2, 96},  {{{2, 5}}, 1, 1, 1},
      // Mixed batches: decode rows of different lengths next to prefill chunks.
      {{{1, 37}, {1, 0}, {9, 20}, {1, 129}}, 8, 2, 64},
      {{{33, 0}, {1, 15}, {1, 16}, {4, 60}}, 6, 6, 32},
  };
  for (int threads : {1, 2}) {
    CpuBackend backend(threads);
    for (const auto& c : cases) {
      const PagedBatch b = make_paged_batch(c.seqs, rng);
      const int64_t kv_row = c.n_kv_heads * c.head_dim;
      std::normal_distribution<float> dist;
      auto q = random_floats(size_t(b.n_rows * c.n_heads * c.head_dim), rng);
      auto k = make_pool(b, kv_row, [&] { return dist(rng); });
      auto v = make_pool(b, kv_row, [&] { return dist(rng); });
      std::vector<float> want(q.size()), got(q.size(), NAN);
      const float scale = 1.0f / std::sqrt(float(c.head_dim));
      ref::attention(q.data(), k.data(), v.data(), want.data(), b.host(), c.n_heads, c.n_kv_heads,
                     c.head_dim, scale);
      backend.attention(q.data(), k.data(), v.data(), got.data(), b.host(), c.n_heads, c.n_kv_heads,
                        c.head_dim, scale);
      expect_close(got, want, 2e-5, "attention seqs=" + std::to_string(c.seqs.size()) +
                                        " rows=" + std::to_string(b.n_rows) + " heads=" + std::to_string(c.n_heads));
    }
  }
}

TEST(CpuOps, StoreKvWritesSlots) {
  std::mt19937 rng(7);
  CpuBackend backend(2);
  const PagedBatch b = make_paged_batch({{5, 3}, {1, 40}, {20, 0}}, rng);
  const int64_t width = 12, stride = 3 * width;
  auto src = random_floats(size_t(b.n_rows * stride), rng);
  std::vector<float> want_k(size_t(b.n_blocks * b.block_size * width)), want_v = want_k;
  std::vector<float> got_k = want_k, got_v = want_k;
  ref::store_kv(src.data(), src.data() + width, b.n_rows, width, stride, b.slots.data(), want_k.data(),
                want_v.data());
  backend.store_kv(src.data(), src.data() + width, b.n_rows, width, stride, b.slots.data(), got_k.data(),
                   got_v.data());
  EXPECT_EQ(got_k, want_k);
  EXPECT_EQ(got_v, want_v);
  // Row r of k landed in its slot.
  EXPECT_EQ(want_k[size_t(b.slots[4]) * width + 2], src[4 * stride + 2]);
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
    }
  const int64_t heads = 3, head_dim = 8, rows = 5, positions = 20;
  auto cos_t = random_floats(size_t(positions * head_dim / 2), rng), sin_t = random_floats(cos_t.size(), rng);
  auto x = random_floats(size_t(rows * heads * head_dim), rng);
  std::vector<float> want = x, got = x;
  const std::vector<int32_t> pos = {7, 0, 19, 3, 3};  // any positions, as a mixed batch has
  ref::rope(want.data(), rows, heads, head_dim, pos.data(), cos_t.data(), sin_t.data());
  backend.rope(got.data(), rows, heads, head_dim, pos.data(), cos_t.data(), sin_t.data());
  expect_close(got, want, 1e-6, "rope");
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
