// Every CudaBackend op against the scalar reference (ops/reference.h) on random shapes, odd sizes
// and misaligned pointers. Outputs are poisoned with NaN first, so an unwritten element fails.
// Without a GPU every test skips (CI), except the check that the factory says why.
// Each comparison prints "[cuda-err] <op> ... rel=<relative L2 error>" for scripts/gpu_check.sh.
#include <cuda_runtime.h>

#include "cuda_ops_fixture.h"

namespace brisk {
namespace {

// A host weight in one dtype, kept alive for the reference.
struct HostWeight {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  Tensor tensor;
};

HostWeight make_weight(DType dtype, int64_t n, int64_t k, std::mt19937& rng) {
  HostWeight w;
  w.f32 = random_vector(size_t(n * k), rng, 0.5f);
  if (dtype == DType::F32) {
    w.tensor = Tensor{w.f32.data(), DType::F32, {n, k}};
  } else {
    w.half.resize(w.f32.size());
    for (size_t i = 0; i < w.f32.size(); ++i)
      w.half[i] = dtype == DType::BF16 ? f32_to_bf16(w.f32[i]) : f32_to_f16(w.f32[i]);
    w.tensor = Tensor{w.half.data(), dtype, {n, k}};
  }
  return w;
}

// ---- factory and errors ---------------------------------------------------------------------

TEST(CudaFactory, ExplainsMissingOrBadDevice) {
  auto backend = make_cuda_backend(0);
  if (!backend.ok()) {
    EXPECT_EQ(backend.error().message.rfind("no CUDA device found (cudaGetDeviceCount: ", 0), 0u)
        << backend.error().message;
    return;
  }
  EXPECT_STREQ(backend.value()->name(), "cuda");
  for (int bad : {-1, 9999}) {
    auto out_of_range = make_cuda_backend(bad);
    ASSERT_FALSE(out_of_range.ok());
    EXPECT_NE(out_of_range.error().message.find("out of range"), std::string::npos)
        << out_of_range.error().message;
  }
}

TEST_F(CudaOps, OutOfMemoryIsAnErrorAndTheBackendStillWorks) {
  auto huge = be().try_allocate(size_t(1) << 42);  // 16 TiB
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message.find("out of memory"), std::string::npos) << huge.error().message;
  std::printf("[cuda-msg] %s\n", huge.error().message.c_str());
  std::vector<float> x = {1, 2, 3}, y = {10, 20, 30};
  Buffer dx = device(x), dy = device(y);
  be().add(dx.data(), dy.data(), 3);
  EXPECT_EQ(host(dx.data(), 3), (std::vector<float>{11, 22, 33}));
}

// brisk optimize swaps candidate matrices in and gives them back: the memory returns at once, a
// second release is a no-op, and the backend's teardown does not free it again.
TEST_F(CudaOps, ReleasedWeightsGiveTheirMemoryBack) {
  std::vector<float> values(size_t(4096) * 4096, 0.5f);
  const Tensor host_matrix{values.data(), DType::F32, {4096, 4096}};
  size_t free_before = 0, free_uploaded = 0, free_after = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_before, &total), cudaSuccess);
  const Tensor uploaded = be().upload(host_matrix);
  ASSERT_EQ(cudaMemGetInfo(&free_uploaded, &total), cudaSuccess);
  be().release_weight(uploaded);
  be().release_weight(uploaded);
  ASSERT_EQ(cudaMemGetInfo(&free_after, &total), cudaSuccess);
  EXPECT_GE(free_before - free_uploaded, host_matrix.nbytes());
  EXPECT_GE(free_after, free_uploaded + host_matrix.nbytes());
  std::vector<float> x = {1, 2}, y = {3, 4};  // the backend still works
  Buffer dx = device(x), dy = device(y);
  be().add(dx.data(), dy.data(), 2);
  EXPECT_EQ(host(dx.data(), 2), (std::vector<float>{4, 6}));
}

TEST_F(CudaOps, AllocateZeroFills) {
  Buffer b = be().allocate(1000);
  for (float v : host(b.data(), 1000)) ASSERT_EQ(v, 0.0f);
}

// ---- matmul ----------------------------------------------------------------------------------

struct MatmulCase {
  int64_t m, n, k;
};

TEST_F(CudaOps, Matmul) {
  const std::vector<MatmulCase> cases = {
      {1, 64, 64},    {3, 64, 64},    {8, 77, 131},   {17, 77, 131},  {128, 320, 64},
      {1, 1000, 1030}, {5, 256, 96},  {2, 33, 7},     {17, 1000, 1030}, {128, 256, 96},
      {1, 300, 5000}, {8, 300, 5000}, {4, 130, 8200}, {9, 8, 8},      {64, 1, 17},
      {1, 1, 64},     {3, 5, 24},     {6, 2000, 256}, {1, 4096, 4096}};
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (const auto& c : cases) {
      for (bool with_bias : {false, true}) {
        for (size_t misalign : {size_t(0), size_t(1)}) {
          if (misalign && with_bias) continue;
          HostWeight w = make_weight(dtype, c.n, c.k, rng_);
          const Tensor dw = be().upload(w.tensor);
          ASSERT_EQ(dw.device, Device::CUDA);
          const std::vector<float> x = random_vector(size_t(c.m * c.k), rng_);
          const std::vector<float> bias = random_vector(size_t(c.n), rng_);
          Buffer dx = device(x, misalign), db = device(bias), dy = poisoned(size_t(c.m * c.n), misalign);
          be().matmul(dx.data() + misalign, c.m, c.k, dw, with_bias ? db.data() : nullptr,
                      dy.data() + misalign);
          const std::vector<float> got = host(dy.data() + misalign, size_t(c.m * c.n));

          // GEMV (m <= 8) keeps x in fp32; the GEMM path rounds x to the weight dtype first.
          const bool rounded = dtype != DType::F32 && c.m > 8;
          const std::vector<float> x_ref = rounded ? round_to(dtype, x) : x;
          std::vector<float> want(size_t(c.m * c.n)), want_exact(size_t(c.m * c.n));
          ref::matmul(x_ref.data(), c.m, c.k, w.tensor, with_bias ? bias.data() : nullptr, want.data());
          ref::matmul(x.data(), c.m, c.k, w.tensor, with_bias ? bias.data() : nullptr,
                      want_exact.data());
          const std::string name = "matmul dtype=" + std::string(dtype_name(dtype)) +
                                   " m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) +
                                   " k=" + std::to_string(c.k) + " bias=" + std::to_string(with_bias) +
                                   " misalign=" + std::to_string(misalign);
          // fp32 products are exact for 16-bit operands, so only the summation order differs.
          EXPECT_LT(report(name, got, want), dtype == DType::F32 ? 1e-5 : 1e-4) << name;
          EXPECT_LT(relative_l2(got, want_exact), 1e-2) << name;
        }
      }
    }
  }
}

// q/k/v-like matrices placed back to back (place_adjacent) and multiplied in one pass give exactly
// what one matmul per matrix gives, at every m (the GEMV only changes where each row is written).
TEST_F(CudaOps, MatmulSameInputOverAdjacentMatrices) {
  for (DType dtype : {DType::BF16, DType::F32}) {
    const int64_t k = 520;
    const std::vector<int64_t> rows = {96, 40, 40};
    std::vector<HostWeight> hw;
    std::vector<Tensor> dw;
    for (int64_t n : rows) {
      hw.push_back(make_weight(dtype, n, k, rng_));
      dw.push_back(be().upload(hw.back().tensor));
    }
    be().place_adjacent({&dw[0], &dw[1], &dw[2]});
    for (size_t p = 1; p < dw.size(); ++p)
      ASSERT_EQ(static_cast<uint8_t*>(dw[p - 1].data) + dw[p - 1].nbytes(), dw[p].data);
    for (int64_t m : {1, 3, 8, 12}) expect_same_input_equals_one_call_each(dw, m, k, dtype_name(dtype));
  }
}

// gate/up placed back to back run as one GEMV with the SwiGLU epilogue; it must give exactly what
// the two matmuls and silu_mul give (at m > 8, and for matrices apart, it is that path itself).
TEST_F(CudaOps, MatmulSwigluOverAdjacentGateUp) {
  for (DType dtype : {DType::BF16, DType::F32}) {
    const int64_t k = 520, ff = 300;
    HostWeight hg = make_weight(dtype, ff, k, rng_), hu = make_weight(dtype, ff, k, rng_);
    Tensor gate = be().upload(hg.tensor), up = be().upload(hu.tensor);
    for (bool adjacent : {false, true}) {
      if (adjacent) be().place_adjacent({&gate, &up});
      for (int64_t m : {1, 3, 8, 12})
        expect_swiglu_equals_apart(gate, up, m, k, std::string(dtype_name(dtype)) + " adjacent=" + std::to_string(adjacent));
    }
  }
}

// ---- attention -------------------------------------------------------------------------------

struct AttentionCase {
  std::vector<std::pair<int64_t, int64_t>> seqs;  // (rows, first_pos) per sequence
  int64_t n_heads, n_kv_heads, head_dim;
};

// ref::attention over the batch, its rows split into chunks run on all cores: the scalar double
// reference needs minutes for a 2048-row prefill with 32 heads on one core. A row's output depends
// only on its position and the pool, so a chunk is a one-sequence batch of its own.
void reference_attention_parallel(const std::vector<float>& q, const std::vector<float>& k,
                                  const std::vector<float>& v, std::vector<float>& out,
                                  const PagedBatch& b, const AttentionCase& c, float scale) {
  constexpr int32_t kChunkRows = 32;
  std::vector<SequenceSpan> chunks;
  for (const SequenceSpan& s : b.spans)
    for (int32_t r = 0; r < s.n_rows; r += kChunkRows)
      chunks.push_back({s.first_row + r, std::min(kChunkRows, s.n_rows - r), s.first_pos + r,
                        s.table_offset});
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < chunks.size(); i = next++) {
      AttentionBatch one = b.host();
      one.seqs = one.host_seqs = &chunks[i];
      one.n_seqs = 1;
      const KvPools pools{KvDtype::F32, const_cast<float*>(k.data()), const_cast<float*>(v.data()),
                          nullptr, nullptr, c.n_kv_heads, c.head_dim};
      ref::attention(q.data(), pools, out.data(), one, c.n_heads, scale);
    }
  };
  std::vector<std::thread> threads(std::max(1u, std::thread::hardware_concurrency()));
  for (auto& t : threads) t = std::thread(work);
  for (auto& t : threads) t.join();
}

std::string attention_case_name(const AttentionCase& c) {
  std::string name = "seqs=";
  for (auto [rows, first] : c.seqs) name += std::to_string(rows) + "@" + std::to_string(first) + ",";
  return name + " heads=" + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
         " hd=" + std::to_string(c.head_dim);
}

// Runs one case on the GPU and checks it against the reference. The fp32 kernel must match to
// ~1e-6. The tensor-core prefill kernel rounds Q, K, V and the probabilities P to bf16 (8
// significant bits: relative rounding error <= 2^-9 ~ 2e-3 each); the rounding errors of different
// keys are independent and partly cancel in the weighted sum over keys, which leaves a relative L2
// error of ~2e-3..4e-3 on random data. It must stay below 1e-2 against the exact reference, and
// below 5e-3 against the reference on bf16-rounded q, k, v, where only the rounding of P and the
// summation order remain (a wrong mask or a misplaced tile gives errors of order 1, not 1e-2).
void check_attention(CudaOps& t, const AttentionCase& c, std::mt19937& rng) {
  const PagedBatch b = make_paged_batch(c.seqs, rng);
  const int64_t kv_row = c.n_kv_heads * c.head_dim, q_row = c.n_heads * c.head_dim;
  const float scale = 1.0f / std::sqrt(float(c.head_dim));
  std::normal_distribution<float> dist;
  std::vector<float> q = random_vector(size_t(b.n_rows * q_row), rng);
  // Slots no sequence owns hold NaN: reading one poisons the output.
  std::vector<float> k = make_pool(b, kv_row, [&] { return dist(rng); });
  std::vector<float> v = make_pool(b, kv_row, [&] { return dist(rng); });
  std::vector<float> want(size_t(b.n_rows * q_row));
  reference_attention_parallel(q, k, v, want, b, c, scale);
  Buffer dq = t.device(q), dk = t.device(k), dv = t.device(v), dout = t.poisoned(want.size());
  Buffer dspans = t.device_words(b.spans), dtables = t.device_words(b.tables);
  AttentionBatch batch = b.host();
  batch.seqs = reinterpret_cast<const SequenceSpan*>(dspans.data());
  batch.block_tables = reinterpret_cast<const int32_t*>(dtables.data());
  const KvPools pools{KvDtype::F32, dk.data(), dv.data(), nullptr, nullptr, c.n_kv_heads, c.head_dim};
  t.be().attention(dq.data(), pools, dout.data(), batch, c.n_heads, scale);
  const std::vector<float> got = t.host(dout.data(), want.size());
  const bool tensor_cores =
      CudaBackend::uses_tensor_core_attention(batch, c.n_heads, c.n_kv_heads, c.head_dim);
  if (!tensor_cores) {
    const std::string name = "attention fp32 " + attention_case_name(c);
    EXPECT_LT(report(name, got, want), 1e-5) << name;
    // The narrower KV dtypes (always the fp32 kernel, loading through their element type) against
    // the reference on the same stored pools: only the arithmetic differs. Not on the tensor-core
    // shapes: those take f32 pools only, and the scalar reference would need minutes there.
    for (KvDtype dtype : {KvDtype::BF16, KvDtype::I8, KvDtype::F8}) {
      HostKv kv(k, v, c.n_kv_heads, c.head_dim, dtype);
      std::vector<float> want_kv(want.size());
      ref::attention(q.data(), kv.pools, want_kv.data(), b.host(), c.n_heads, scale);
      const CudaOps::DeviceKv dkv = t.device_kv(kv);
      Buffer dout_kv = t.poisoned(want.size());
      t.be().attention(dq.data(), dkv.pools, dout_kv.data(), batch, c.n_heads, scale);
      const std::string kv_name =
          "attention kv=" + std::string(kv_dtype_name(dtype)) + " " + attention_case_name(c);
      EXPECT_LT(report(kv_name, t.host(dout_kv.data(), want.size()), want_kv), 1e-5) << kv_name;
    }
    return;
  }
  const std::string name = "attention bf16-tc " + attention_case_name(c);
  EXPECT_LT(report(name, got, want), 1e-2) << name;
  std::vector<float> want_rounded(want.size());
  reference_attention_parallel(round_to(DType::BF16, q), round_to(DType::BF16, k),
                               round_to(DType::BF16, v), want_rounded, b, c, scale);
  const std::string rounded_name = "attention bf16-tc/rounded-inputs " + attention_case_name(c);
  EXPECT_LT(report(rounded_name, got, want_rounded), 5e-3) << rounded_name;
}

TEST_F(CudaOps, Attention) {
  // Shapes of both kernels: those with enough rows and head_dim 64/128 run on the tensor cores
  // (check_attention picks the tolerance), the rest in fp32.
  const std::vector<AttentionCase> cases = {
      {{{1, 2999}}, 8, 2, 128},  // decode over a long context, GQA: split keys
      {{{1, 0}}, 4, 4, 32},      // the first token: one key
      {{{77, 50}}, 6, 2, 64},    // prefill chunk after a prefix, GQA 3
      {{{77, 0}}, 4, 4, 32},     // prefill from scratch, MHA
      {{{5, 1000}}, 4, 1, 16},   // MQA, small head
      {{{3, 400}}, 4, 2, 80},    // head_dim padded up to 128
      {{{2, 700}}, 2, 2, 256},   // the largest head_dim
      {{{9, 33}}, 4, 2, 18},     // head_dim not a multiple of 4: scalar loads
      {{{1, 129}}, 32, 8, 128},  // Llama-3-8B decode shape
      {{{130, 0}}, 8, 8, 64},    // many query tiles
      {{{2, 300}}, 4, 2, 64},    // two decode rows in one narrow tile: different causal limits
      {{{150, 0}}, 4, 4, 96},    // a long prefill with a head_dim the tensor-core kernel leaves
      // Batched decode: sequences of different lengths in one launch (split keys).
      {{{1, 2000}, {1, 0}, {1, 77}, {1, 511}, {1, 16}}, 32, 8, 128},
      // A prefill chunk beside decode rows.
      {{{1, 300}, {40, 17}, {1, 5}}, 8, 2, 64},
  };
  for (const auto& c : cases) check_attention(*this, c, rng_);
}

// Sliding windows, soft-capped scores and bidirectional masks run on the fp32 kernel (prefill shapes included: the
// tensor-core kernel declines them), split decode too, against the reference.
TEST_F(CudaOps, WindowedSoftCappedAttention) {
  const std::vector<AttentionCase> cases = {
      {{{1, 2999}}, 8, 2, 128},                     // split decode: most splits see no key
      {{{130, 0}}, 8, 8, 64},                       // a prefill shape of the tensor-core kernel
      {{{1, 300}, {40, 17}, {1, 5}}, 8, 2, 64},     // mixed batch
      {{{9, 33}}, 4, 2, 18},
  };
  const AttentionParams variants[] = {{0.0f, 0.0f, 16}, {0.0f, 5.0f, 0}, {0.0f, 3.0f, 100},
                                      {0.0f, 0.0f, 0, AttentionMask::Bidirectional}};
  for (const auto& c : cases)
    for (AttentionParams params : variants) {
      const PagedBatch b = make_paged_batch(c.seqs, rng_);
      params.scale = 4.0f / std::sqrt(float(c.head_dim));
      const int64_t kv_row = c.n_kv_heads * c.head_dim, q_row = c.n_heads * c.head_dim;
      std::normal_distribution<float> dist;
      std::vector<float> q = random_vector(size_t(b.n_rows * q_row), rng_);
      std::vector<float> k = make_pool(b, kv_row, [&] { return dist(rng_); });
      std::vector<float> v = make_pool(b, kv_row, [&] { return dist(rng_); });
      const KvPools host_pools{KvDtype::F32, k.data(), v.data(), nullptr, nullptr, c.n_kv_heads, c.head_dim};
      std::vector<float> want(size_t(b.n_rows * q_row));
      ref::attention(q.data(), host_pools, want.data(), b.host(), c.n_heads, params);
      Buffer dq = device(q), dk = device(k), dv = device(v), dout = poisoned(want.size());
      Buffer dspans = device_words(b.spans), dtables = device_words(b.tables);
      AttentionBatch batch = b.host();
      batch.seqs = reinterpret_cast<const SequenceSpan*>(dspans.data());
      batch.block_tables = reinterpret_cast<const int32_t*>(dtables.data());
      const KvPools pools{KvDtype::F32, dk.data(), dv.data(), nullptr, nullptr, c.n_kv_heads, c.head_dim};
      be().attention(dq.data(), pools, dout.data(), batch, c.n_heads, params);
      const std::string name = "attention window=" + std::to_string(params.window) + " cap=" +
                               std::to_string(params.softcap) + " " + attention_case_name(c);
      EXPECT_LT(report(name, host(dout.data(), want.size()), want), 1e-5) << name;
    }
}

// Cases that must reach the bf16 tensor-core prefill kernel (asserted, so a changed dispatch rule
// shows up here instead of silently testing the fp32 kernel twice). Its tiles are 128 query
// vectors (rows x group) by 64 keys; the cases cover tails of both, causal diagonals inside a
// tile, deep prefixes, GQA/MHA and several sequences with shuffled block tables in one launch.
TEST_F(CudaOps, AttentionPrefillTensorCores) {
  const std::vector<AttentionCase> cases = {
      {{{2048, 0}}, 32, 8, 128},  // the Llama-3-8B prefill shape (the benchmark's)
      {{{2048, 0}}, 8, 8, 64},    // MHA, head_dim 64
      {{{77, 50}}, 32, 8, 128},   // a chunk after a prefix: rows and keys (127) off tile sizes
      {{{77, 50}}, 8, 8, 64},     // the same, MHA: 77 query vectors, most of one tile padding
      {{{64, 0}}, 4, 4, 128},     // exactly the threshold: half a tile
      {{{16, 0}}, 32, 8, 64},     // 16 rows x group 4: the threshold again, through GQA
      {{{200, 1000}}, 32, 8, 128},  // deep prefix: unmasked tiles, then the diagonal
      {{{129, 0}}, 6, 2, 64},     // group 3: tiles end mid-row
      {{{300, 7}}, 16, 1, 128},   // MQA, group 16: 8 rows per warp tile
      // Several sequences in one launch: different lengths and prefixes, one decode row among them.
      {{{100, 0}, {33, 200}, {64, 15}, {1, 40}, {250, 3}}, 32, 8, 128},
      {{{70, 0}, {90, 500}, {17, 16}}, 8, 8, 64},
  };
  for (const auto& c : cases) {
    const PagedBatch b = make_paged_batch(c.seqs, rng_);
    ASSERT_TRUE(
        CudaBackend::uses_tensor_core_attention(b.host(), c.n_heads, c.n_kv_heads, c.head_dim))
        << "expected the tensor-core prefill kernel for " << attention_case_name(c);
    check_attention(*this, c, rng_);
  }
}

// The device writes exactly the reference's bytes and scales for every dtype (head rows longer
// than a warp, an all-zero row included).
TEST_F(CudaOps, StoreKv) {
  const PagedBatch b = make_paged_batch({{5, 3}, {1, 40}, {20, 0}}, rng_);
  const int64_t n_kv_heads = 2, head_dim = 40, width = n_kv_heads * head_dim, stride = 3 * width;
  std::vector<float> src = random_vector(size_t(b.n_rows * stride), rng_, 3.0f);
  std::fill_n(src.begin() + stride + head_dim, head_dim, 0.0f);  // row 1, kv head 1
  const std::vector<float> zeros(size_t(b.n_blocks * b.block_size * width), 0.0f);
  Buffer dsrc = device(src), dslots = device_words(b.slots);
  for (KvDtype dtype : {KvDtype::F32, KvDtype::BF16, KvDtype::I8, KvDtype::F8}) {
    HostKv want(zeros, zeros, n_kv_heads, head_dim, dtype);
    ref::store_kv(src.data(), src.data() + width, b.n_rows, stride, b.slots.data(), want.pools);
    const DeviceKv got = device_kv(HostKv(zeros, zeros, n_kv_heads, head_dim, dtype));
    be().store_kv(dsrc.data(), dsrc.data() + width, b.n_rows, stride,
                  reinterpret_cast<const int32_t*>(dslots.data()), got.pools);
    // Byte comparisons: codes seen as floats may spell NaN, which never equals itself.
    auto same_bytes = [&](const float* device_ptr, const std::vector<float>& expected) {
      const std::vector<float> got = host(device_ptr, expected.size());
      return std::memcmp(got.data(), expected.data(), expected.size() * sizeof(float)) == 0;
    };
    const std::string name(kv_dtype_name(dtype));
    EXPECT_TRUE(same_bytes(got.k.data(), want.k)) << name;
    EXPECT_TRUE(same_bytes(got.v.data(), want.v)) << name;
    EXPECT_TRUE(same_bytes(got.k_scales.data(), want.k_scales)) << name;
    EXPECT_TRUE(same_bytes(got.v_scales.data(), want.v_scales)) << name;
  }
}

// rope_store_kv (one launch for F32/BF16 pools, the two calls for I8/F8) leaves q, k and the
// pools exactly as rope() then store_kv() do.
TEST_F(CudaOps, RopeStoreKvEqualsRopeThenStoreKv) {
  const PagedBatch b = make_paged_batch({{5, 3}, {1, 40}, {20, 0}}, rng_);
  const int64_t n_heads = 4, n_kv_heads = 2, head_dim = 40, width = n_kv_heads * head_dim;
  const int64_t n_pos = 64, half = head_dim / 2;
  const std::vector<float> cos_t = random_vector(size_t(n_pos * half), rng_);
  const std::vector<float> sin_t = random_vector(size_t(n_pos * half), rng_);
  std::vector<int32_t> pos(size_t(b.n_rows));
  for (size_t r = 0; r < pos.size(); ++r) pos[r] = int32_t((r * 7) % size_t(n_pos));
  const std::vector<float> q = random_vector(size_t(b.n_rows * n_heads * head_dim), rng_, 3.0f);
  const std::vector<float> k = random_vector(size_t(b.n_rows * width), rng_, 3.0f);
  const std::vector<float> v = random_vector(size_t(b.n_rows * width), rng_, 3.0f);
  const std::vector<float> zeros(size_t(b.n_blocks * b.block_size * width), 0.0f);
  Buffer dc = device(cos_t), ds = device(sin_t), dpos = device_words(pos), dslots = device_words(b.slots);
  const auto* positions = reinterpret_cast<const int32_t*>(dpos.data());
  const auto* slots = reinterpret_cast<const int32_t*>(dslots.data());
  for (KvDtype dtype : {KvDtype::F32, KvDtype::BF16, KvDtype::I8, KvDtype::F8}) {
    Buffer q1 = device(q), k1 = device(k), v1 = device(v), q2 = device(q), k2 = device(k), v2 = device(v);
    const DeviceKv apart = device_kv(HostKv(zeros, zeros, n_kv_heads, head_dim, dtype));
    const DeviceKv fused = device_kv(HostKv(zeros, zeros, n_kv_heads, head_dim, dtype));
    be().rope(q1.data(), k1.data(), b.n_rows, n_heads, n_kv_heads, head_dim, positions, dc.data(), ds.data());
    be().store_kv(k1.data(), v1.data(), b.n_rows, width, slots, apart.pools);
    be().rope_store_kv(q2.data(), k2.data(), v2.data(), b.n_rows, n_heads, positions, dc.data(), ds.data(),
                       slots, fused.pools);
    const std::string name(kv_dtype_name(dtype));
    auto same = [&](const Buffer& a, const Buffer& c) {  // whole buffers, as bytes: codes may spell NaN
      const std::vector<float> x = host(a.data(), a.size()), y = host(c.data(), c.size());
      return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    EXPECT_TRUE(same(q1, q2)) << name;
    EXPECT_TRUE(same(k1, k2)) << name;
    EXPECT_TRUE(same(apart.k, fused.k)) << name;
    EXPECT_TRUE(same(apart.v, fused.v)) << name;
    EXPECT_TRUE(same(apart.k_scales, fused.k_scales)) << name;
    EXPECT_TRUE(same(apart.v_scales, fused.v_scales)) << name;
  }
}

// ---- norms, rope, element-wise ---------------------------------------------------------------

TEST_F(CudaOps, RmsNormAndLayerNorm) {
  for (auto [rows, d] : {std::pair<int64_t, int64_t>{1, 4096}, {7, 64}, {33, 1000}, {3, 13}, {2, 8192}, {2, 5001}}) {
    const std::vector<float> x = random_vector(size_t(rows * d), rng_, 3.0f);
    const std::vector<float> w = random_vector(size_t(d), rng_), b = random_vector(size_t(d), rng_);
    Buffer dx = device(x), dw = device(w), db = device(b);
    const std::string shape = " rows=" + std::to_string(rows) + " d=" + std::to_string(d);

    std::vector<float> want(x.size());
    ref::rms_norm(x.data(), w.data(), rows, d, 1e-5f, want.data());
    Buffer dy = poisoned(x.size());
    be().rms_norm(dx.data(), dw.data(), rows, d, 1e-5f, dy.data());
    EXPECT_LT(report("rms_norm" + shape, host(dy.data(), x.size()), want), 1e-6);

    // The fused residual form, writing its output over h as the models do: x += h; h = norm(x).
    const std::vector<float> h = random_vector(x.size(), rng_);
    std::vector<float> sum = x;
    ref::add(sum.data(), h.data(), rows * d);
    ref::rms_norm(sum.data(), w.data(), rows, d, 1e-5f, want.data());
    Buffer dsum = device(x), dh = device(h);
    be().add_rms_norm(dsum.data(), dh.data(), dw.data(), rows, d, 1e-5f, dh.data());
    EXPECT_LT(report("add_rms_norm" + shape, host(dh.data(), x.size()), want), 1e-6);
    EXPECT_EQ(host(dsum.data(), x.size()), sum);

    for (bool with_bias : {false, true}) {
      ref::layer_norm(x.data(), w.data(), with_bias ? b.data() : nullptr, rows, d, 1e-5f, want.data());
      Buffer dl = poisoned(x.size());
      be().layer_norm(dx.data(), dw.data(), with_bias ? db.data() : nullptr, rows, d, 1e-5f, dl.data());
      EXPECT_LT(report("layer_norm bias=" + std::to_string(with_bias) + shape,
                       host(dl.data(), x.size()), want),
                1e-6);
    }
  }
}

TEST_F(CudaOps, Rope) {
  for (auto [rows, first_pos, heads, kv_heads, hd] : std::vector<std::array<int64_t, 5>>{
           {1, 0, 4, 2, 16}, {77, 50, 6, 6, 64}, {5, 1000, 2, 1, 128}, {3, 7, 3, 0, 18}}) {
    const int64_t n_pos = first_pos + rows + 3, half = hd / 2;
    std::vector<float> cos_t(size_t(n_pos * half)), sin_t(size_t(n_pos * half));
    for (int64_t p = 0; p < n_pos; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = double(p) * std::pow(10000.0, -2.0 * double(i) / double(hd));
        cos_t[size_t(p * half + i)] = float(std::cos(angle));
        sin_t[size_t(p * half + i)] = float(std::sin(angle));
      }
    std::vector<float> q = random_vector(size_t(rows * heads * hd), rng_);
    std::vector<float> k = random_vector(size_t(std::max<int64_t>(rows * kv_heads * hd, 1)), rng_);
    std::vector<int32_t> pos(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) pos[size_t(r)] = int32_t(r % 2 ? first_pos + r : first_pos + rows - 1 - r);
    Buffer dq = device(q), dk = device(k), dc = device(cos_t), ds = device(sin_t), dpos = device_words(pos);
    // kv_heads 0: no key tensor (k null); k must then come back untouched.
    be().rope(dq.data(), kv_heads > 0 ? dk.data() : nullptr, rows, heads, kv_heads, hd,
              reinterpret_cast<const int32_t*>(dpos.data()), dc.data(), ds.data());
    ref::rope(q.data(), rows, heads, hd, pos.data(), cos_t.data(), sin_t.data());
    ref::rope(k.data(), rows, kv_heads, hd, pos.data(), cos_t.data(), sin_t.data());
    const std::string shape = " rows=" + std::to_string(rows) + " first_pos=" + std::to_string(first_pos) +
                              " hd=" + std::to_string(hd) + " kv_heads=" + std::to_string(kv_heads);
    EXPECT_LT(report("rope q" + shape, host(dq.data(), q.size()), q), 1e-6);
    EXPECT_LT(report("rope k" + shape, host(dk.data(), k.size()), k), 1e-6);
  }
}

TEST_F(CudaOps, ElementWise) {
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(1) << 20, int64_t(12345)}) {
    const std::string size = " n=" + std::to_string(n);
    const std::vector<float> a = random_vector(size_t(n), rng_, 3.0f), b = random_vector(size_t(n), rng_);
    Buffer da = device(a), db = device(b);

    std::vector<float> want(a.size());
    ref::silu_mul(a.data(), b.data(), want.data(), n);
    Buffer dout = poisoned(a.size());
    be().silu_mul(da.data(), db.data(), dout.data(), n);
    EXPECT_LT(report("silu_mul" + size, host(dout.data(), a.size()), want), 1e-6);
    be().silu_mul(da.data(), db.data(), da.data(), n);  // in place over gate, as the models do
    EXPECT_LT(relative_l2(host(da.data(), a.size()), want), 1e-6);

    Buffer dg = device(a);
    want = a;
    ref::gelu_tanh(want.data(), n);
    be().gelu_tanh(dg.data(), n);
    EXPECT_LT(report("gelu_tanh" + size, host(dg.data(), a.size()), want), 1e-6);

    Buffer dx = device(a);
    want = a;
    ref::add(want.data(), b.data(), n);
    be().add(dx.data(), db.data(), n);
    EXPECT_LT(report("add" + size, host(dx.data(), a.size()), want), 1e-7);

    // Gemma's ops: GeGLU's product, the embedding scale, soft-capped logits.
    Buffer dm = device(a);
    want = a;
    ref::mul(want.data(), b.data(), n);
    be().mul(dm.data(), db.data(), n);
    EXPECT_LT(report("mul" + size, host(dm.data(), a.size()), want), 1e-7);
    Buffer ds = device(a);
    want = a;
    ref::scale(want.data(), n, 8.0f);
    be().scale(ds.data(), n, 8.0f);
    EXPECT_LT(report("scale" + size, host(ds.data(), a.size()), want), 1e-7);
    Buffer dc = device(a);
    want = a;
    ref::soft_cap(want.data(), n, 2.5f);
    be().soft_cap(dc.data(), n, 2.5f);
    EXPECT_LT(report("soft_cap" + size, host(dc.data(), a.size()), want), 1e-6);
    Buffer de = device(a);
    want = a;
    ref::gelu_erf(want.data(), n);
    be().gelu_erf(de.data(), n);
    EXPECT_LT(report("gelu_erf" + size, host(de.data(), a.size()), want), 1e-6);
  }
}

TEST_F(CudaOps, GatherRows) {
  const int64_t rows = 500, d = 70, n = 600;  // n > 512 ids: more than one launch
  std::uniform_int_distribution<int32_t> pick(0, int32_t(rows - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& id : ids) id = pick(rng_);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    HostWeight table = make_weight(dtype, rows, d, rng_);
    const Tensor dt = be().upload(table.tensor);
    for (Accumulate acc : {Accumulate::No, Accumulate::Yes}) {
      const std::vector<float> start = random_vector(size_t(n * d), rng_);
      std::vector<float> want = acc == Accumulate::Yes ? start : std::vector<float>(start.size());
      for (int64_t r = 0; r < n; ++r)
        for (int64_t i = 0; i < d; ++i) {
          const float v = load_as_f32(table.tensor.data, dtype, size_t(ids[size_t(r)] * d + i));
          want[size_t(r * d + i)] = acc == Accumulate::Yes ? want[size_t(r * d + i)] + v : v;
        }
      Buffer dout = acc == Accumulate::Yes ? device(start) : poisoned(start.size());
      Buffer dids = device_words(ids);
      be().gather_rows(dt, reinterpret_cast<const int32_t*>(dids.data()), n, dout.data(), acc);
      EXPECT_LT(report("gather_rows dtype=" + std::string(dtype_name(dtype)) +
                           " accumulate=" + std::to_string(acc == Accumulate::Yes),
                       host(dout.data(), start.size()), want),
                1e-7);
    }
  }
}

TEST_F(CudaOps, GatherRowsOutOfRangeIdGivesNaN) {
  const std::vector<float> table_host = random_vector(3 * 5, rng_);
  const Tensor table = be().upload(Tensor{const_cast<float*>(table_host.data()), DType::F32, {3, 5}});
  Buffer dids = device_words(std::vector<int32_t>{2, 3, -1});
  Buffer dout = device(std::vector<float>(15, 0.0f));
  be().gather_rows(table, reinterpret_cast<const int32_t*>(dids.data()), 3, dout.data(), Accumulate::No);
  const std::vector<float> got = host(dout.data(), 15);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got[size_t(i)], table_host[size_t(10 + i)]);
    EXPECT_TRUE(std::isnan(got[size_t(5 + i)]) && std::isnan(got[size_t(10 + i)]));
  }
}

// ---- sampling --------------------------------------------------------------------------------

TEST_F(CudaOps, ArgmaxRowsMatchesTheHostSampler) {
  for (auto [rows, vocab] : {std::pair<int64_t, int64_t>{1, 128256}, {7, 1000}, {300, 8192}, {3, 5}}) {
    std::vector<float> logits = random_vector(size_t(rows * vocab), rng_, 4.0f);
    // Ties: row 0's maximum appears twice; the first one must win, as in std::max_element.
    if (vocab > 10) logits[7] = logits[size_t(vocab - 2)] = 100.0f;
    std::vector<int32_t> want(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits.data() + r * vocab;
      want[size_t(r)] = int32_t(std::max_element(row, row + vocab) - row);
    }
    Buffer dl = device(logits), dids = device(std::vector<float>(size_t(rows), kNaN));
    be().argmax_rows(dl.data(), rows, vocab, reinterpret_cast<int32_t*>(dids.data()));
    std::vector<int32_t> got(static_cast<size_t>(rows));
    be().copy_to_host(reinterpret_cast<float*>(got.data()), dids.data(), size_t(rows));
    EXPECT_EQ(got, want) << "rows=" << rows << " vocab=" << vocab;
  }
}

// Rows with a NaN anywhere, an infinite maximum or only -inf answer kNonFiniteLogits from both
// kernels, as ref::argmax_row and ref::sample_row do (NaN rows once came out as token 0).
TEST_F(CudaOps, NonFiniteRowsAnswerTheSentinel) {
  const int64_t vocab = 3000;
  const int64_t rows = 5;
  std::vector<float> logits = random_vector(size_t(rows * vocab), rng_, 4.0f);
  logits[size_t(0 * vocab + 2999)] = kNaN;                             // one NaN, at the end
  logits[size_t(1 * vocab + 17)] = INFINITY;                           // an infinite maximum
  for (int64_t i = 0; i < vocab; ++i) logits[size_t(2 * vocab + i)] = -INFINITY;  // no finite value
  logits[size_t(3 * vocab + 5)] = -INFINITY;                           // finite row with one -inf: fine
  std::vector<int32_t> want(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) want[size_t(r)] = ref::argmax_row(logits.data() + r * vocab, vocab);
  ASSERT_EQ(want[0], kNonFiniteLogits);
  ASSERT_EQ(want[1], kNonFiniteLogits);
  ASSERT_EQ(want[2], kNonFiniteLogits);
  ASSERT_NE(want[3], kNonFiniteLogits);
  for (const float temperature : {0.0f, 0.8f}) {
    std::vector<SampleRowParams> params(static_cast<size_t>(rows));
    for (SampleRowParams& p : params) p.temperature = temperature;
    const std::vector<TokenCount> counts = {{0, 0}};
    Buffer dl = device(logits), dparams = device_words(params), dcounts = device_words(counts),
           dids = device(std::vector<float>(size_t(rows), 0.0f));
    be().sample_rows(dl.data(), rows, vocab, reinterpret_cast<const SampleRowParams*>(dparams.data()),
                     reinterpret_cast<const TokenCount*>(dcounts.data()), nullptr, reinterpret_cast<int32_t*>(dids.data()));
    std::vector<int32_t> got(static_cast<size_t>(rows));
    be().copy_to_host(reinterpret_cast<float*>(got.data()), dids.data(), size_t(rows));
    for (int64_t r = 0; r < 3; ++r) EXPECT_EQ(got[size_t(r)], kNonFiniteLogits) << "sample_rows row " << r;
    if (temperature == 0.0f) EXPECT_EQ(got[3], want[3]);
  }
  Buffer dl = device(logits), dids = device(std::vector<float>(size_t(rows), 0.0f));
  be().argmax_rows(dl.data(), rows, vocab, reinterpret_cast<int32_t*>(dids.data()));
  std::vector<int32_t> got(static_cast<size_t>(rows));
  be().copy_to_host(reinterpret_cast<float*>(got.data()), dids.data(), size_t(rows));
  EXPECT_EQ(got, want);
}

// Random parameters for one row: every feature on or off, penalties on up to 40 distinct tokens.
SampleRowParams random_sample_params(int64_t vocab, std::mt19937& rng, std::vector<TokenCount>& counts) {
  auto pick = [&](auto... options) {
    const std::array values = {options...};
    return values[rng() % values.size()];
  };
  SampleRowParams p;
  p.seed = (uint64_t(rng()) << 32) | rng();
  p.step = rng() % 1000;
  p.temperature = pick(0.0f, 0.3f, 0.7f, 1.0f, 1.8f);
  p.top_k = pick(0, 1, 5, 50, int32_t(vocab), int32_t(vocab) + 3);
  p.top_p = pick(1.0f, 0.95f, 0.6f, 0.2f, 0.0f);
  p.min_p = pick(0.0f, 0.0f, 0.05f, 0.3f);
  p.repetition_penalty = pick(1.0f, 1.3f, 0.8f);
  p.presence_penalty = pick(0.0f, 0.5f, -0.4f);
  p.frequency_penalty = pick(0.0f, 0.25f);
  p.first_count = int32_t(counts.size());
  std::vector<int32_t> tokens(static_cast<size_t>(vocab));
  for (int64_t t = 0; t < vocab; ++t) tokens[size_t(t)] = int32_t(t);
  std::shuffle(tokens.begin(), tokens.end(), rng);
  p.n_counts = int32_t(std::min<int64_t>(vocab, rng() % 41));
  for (int32_t i = 0; i < p.n_counts; ++i) {  // penalized, biased (logit_bias), or both
    const int32_t in_context = int32_t(rng() % 3 != 0);
    counts.push_back({tokens[size_t(i)], in_context ? int32_t(rng() % 4) : 0, in_context, pick(0.0f, 0.0f, 2.5f, -100.0f)});
  }
  return p;
}

// The same ids as the reference on random logits (no ties) and random parameters; the penalized
// logits left in place agree bit for bit.
TEST_F(CudaOps, SampleRowsMatchTheReference) {
  int64_t rows_total = 0, mismatches = 0;
  for (auto [rows, vocab] : {std::pair<int64_t, int64_t>{1, 128256}, {2, 151936}, {64, 8192}, {300, 1000}, {9, 5}}) {
    std::vector<float> logits = random_vector(size_t(rows * vocab), rng_, 3.0f);
    std::vector<TokenCount> counts;
    std::vector<SampleRowParams> params;
    // Every third row constrained by a random allowed mask (grammar decoding): dense, sparse, or one token.
    std::vector<uint32_t> words;
    const int64_t row_words = (vocab + 31) / 32;
    for (int64_t r = 0; r < rows; ++r) {
      params.push_back(random_sample_params(vocab, rng_, counts));
      if (r % 3 != 1) continue;
      params.back().first_allowed_word = int32_t(words.size());
      const uint32_t density = rng_() % 3;
      for (int64_t w = 0; w < row_words; ++w)
        words.push_back(density == 0 ? uint32_t(rng_()) : density == 1 ? uint32_t(rng_() & rng_() & rng_()) : 0u);
      const int64_t keep = int64_t(rng_() % uint64_t(vocab));
      words[size_t(params.back().first_allowed_word + keep / 32)] |= 1u << (keep % 32);
    }
    counts.push_back({0, 0});  // never empty, so the device buffer exists
    words.push_back(0);
    Buffer dl = device(logits), dparams = device_words(params), dcounts = device_words(counts),
           dwords = device_words(words), dids = device(std::vector<float>(size_t(rows), kNaN));
    be().sample_rows(dl.data(), rows, vocab, reinterpret_cast<const SampleRowParams*>(dparams.data()),
                     reinterpret_cast<const TokenCount*>(dcounts.data()),
                     reinterpret_cast<const uint32_t*>(dwords.data()), reinterpret_cast<int32_t*>(dids.data()));
    std::vector<int32_t> got(static_cast<size_t>(rows)), want(static_cast<size_t>(rows));
    be().copy_to_host(reinterpret_cast<float*>(got.data()), dids.data(), size_t(rows));
    std::vector<float> scratch;
    for (int64_t r = 0; r < rows; ++r)
      want[size_t(r)] = ref::sample_row(logits.data() + r * vocab, vocab, params[size_t(r)], counts.data(), words.data(), scratch);
    // The logits left in place agree bit for bit (masked ones are -inf on both sides, which a
    // relative error cannot compare: counted equal by ==).
    const std::vector<float> device_logits = host(dl.data(), logits.size());
    int64_t differing = 0;
    for (size_t i = 0; i < logits.size(); ++i) differing += !(device_logits[i] == logits[i]);
    EXPECT_EQ(differing, 0) << "rows=" << rows << " vocab=" << vocab;
    for (int64_t r = 0; r < rows; ++r) {
      const SampleRowParams& p = params[size_t(r)];
      mismatches += got[size_t(r)] != want[size_t(r)];
      EXPECT_EQ(got[size_t(r)], want[size_t(r)])
          << "rows=" << rows << " vocab=" << vocab << " row " << r << ": temperature=" << p.temperature
          << " top_k=" << p.top_k << " top_p=" << p.top_p << " min_p=" << p.min_p << " penalties=" << p.n_counts;
    }
    rows_total += rows;
  }
  std::printf("[cuda-err] sample_rows id mismatches %lld of %lld rows\n", (long long)mismatches, (long long)rows_total);
}

// Many draws of one distribution (each row its own step): the frequencies follow softmax, and
// top-p keeps only the smallest set reaching p.
TEST_F(CudaOps, SampleRowsFollowTheDistribution) {
  const std::vector<double> probs = {0.05, 0.5, 0.3, 0.1, 0.05};
  const int64_t vocab = int64_t(probs.size()), rows = 20000;
  for (float top_p : {1.0f, 0.75f}) {
    std::vector<float> logits;
    for (int64_t r = 0; r < rows; ++r)
      for (double pr : probs) logits.push_back(float(std::log(pr)));
    std::vector<SampleRowParams> params(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      params[size_t(r)].seed = 3;
      params[size_t(r)].step = uint64_t(r);
      params[size_t(r)].temperature = 1.0f;
      params[size_t(r)].top_p = top_p;
    }
    const std::vector<TokenCount> counts = {{0, 0}};
    Buffer dl = device(logits), dparams = device_words(params), dcounts = device_words(counts),
           dids = device(std::vector<float>(size_t(rows), kNaN));
    be().sample_rows(dl.data(), rows, vocab, reinterpret_cast<const SampleRowParams*>(dparams.data()),
                     reinterpret_cast<const TokenCount*>(dcounts.data()), nullptr, reinterpret_cast<int32_t*>(dids.data()));
    std::vector<int32_t> got(static_cast<size_t>(rows));
    be().copy_to_host(reinterpret_cast<float*>(got.data()), dids.data(), size_t(rows));
    std::vector<double> freq(probs.size());
    for (int32_t id : got) {
      ASSERT_TRUE(id >= 0 && id < vocab);
      freq[size_t(id)] += 1.0 / double(rows);
    }
    for (size_t i = 0; i < probs.size(); ++i) {
      const bool kept = top_p == 1.0f || i == 1 || i == 2;  // 0.5 + 0.3 reaches 0.75
      const double want = kept ? probs[i] / (top_p == 1.0f ? 1.0 : 0.8) : 0.0;
      EXPECT_NEAR(freq[i], want, 0.015) << "top_p=" << top_p << " token " << i;
    }
  }
}

// ---- recording -------------------------------------------------------------------------------

TEST_F(CudaOps, RecordedOpsReplayOnNewInputs) {
  ASSERT_TRUE(be().can_record());
  const int64_t n = 1000;
  std::vector<float> a = random_vector(size_t(n), rng_), b = random_vector(size_t(n), rng_);
  Buffer da = device(a), db = device(b), dout = poisoned(size_t(n));
  be().begin_capture();
  be().silu_mul(da.data(), db.data(), dout.data(), n);
  be().add(dout.data(), db.data(), n);
  auto recording = be().end_capture();
  ASSERT_NE(recording, nullptr);
  for (int round = 0; round < 3; ++round) {
    a = random_vector(size_t(n), rng_);  // new inputs in the same buffers before each replay
    be().copy_to_device(da.data(), a.data(), size_t(n));
    recording->replay();
    std::vector<float> want(static_cast<size_t>(n));
    ref::silu_mul(a.data(), b.data(), want.data(), n);
    ref::add(want.data(), b.data(), n);
    EXPECT_LT(report("recorded silu_mul+add", host(dout.data(), size_t(n)), want), 1e-6);
  }
}

TEST_F(CudaOps, Copy2d) {
  const int64_t rows = 12, cols = 37, src_stride = 111, dst_stride = 40, src_offset = 5;
  const std::vector<float> src = random_vector(size_t(rows * src_stride + src_offset), rng_);
  const std::vector<float> dst0 = random_vector(size_t(rows * dst_stride), rng_);
  std::vector<float> want = dst0;  // the columns past `cols` stay as they were
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      want[size_t(r * dst_stride + c)] = src[size_t(src_offset + r * src_stride + c)];
  Buffer ds = device(src), dd = device(dst0);
  be().copy_2d(ds.data() + src_offset, src_stride, dd.data(), dst_stride, rows, cols);
  EXPECT_LT(report("copy_2d", host(dd.data(), want.size()), want), 1e-9);
}

}  // namespace
}  // namespace brisk
