// The CudaOps fixture and the helpers the CUDA op tests share (cuda_ops_test.cc,
// cuda_quant_ops_test.cc): a backend per test suite (every test skips without a GPU), device
// copies of host vectors, NaN-poisoned outputs, relative-L2 reports ("[cuda-err] <op> ... rel=")
// that scripts/gpu_check.sh collects. Included once per test program.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/quant_layout.h"
#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "ops/reference.h"
#include "paged_batch.h"

namespace brisk {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
  }
  if (std::isnan(num)) return std::numeric_limits<double>::infinity();
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double report(const std::string& what, const std::vector<float>& got, const std::vector<float>& want) {
  const double err = relative_l2(got, want);
  std::printf("[cuda-err] %s rel=%.3e\n", what.c_str(), err);
  return err;
}

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::vector<float> round_to(DType dtype, const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    r[i] = dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(x[i]))
         : dtype == DType::F16  ? f16_to_f32(f32_to_f16(x[i]))
                                : x[i];
  return r;
}

class CudaOps : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto backend = CudaBackend::create(0);
    if (backend.ok())
      backend_ = std::move(backend).value();
    else
      skip_reason_ = backend.error().message;
  }
  static void TearDownTestSuite() { backend_.reset(); }
  void SetUp() override {
    if (!backend_) GTEST_SKIP() << "no GPU: " << skip_reason_;
  }

 public:  // the helpers below are shared with free test functions (check_attention)
  CudaBackend& be() { return *backend_; }
  // A device buffer of n floats (+ `offset` leading floats, to misalign it) holding `host`.
  Buffer device(const std::vector<float>& host, size_t offset = 0) {
    Buffer b = be().allocate(host.size() + offset);
    be().copy_to_device(b.data() + offset, host.data(), host.size());
    return b;
  }
  Buffer poisoned(size_t n, size_t offset = 0) { return device(std::vector<float>(n, kNaN), offset); }
  // 32-bit metadata (block tables, spans) copied bit for bit through a float buffer.
  template <class T>
  Buffer device_words(const std::vector<T>& values) {
    std::vector<float> words(values.size() * sizeof(T) / sizeof(float));
    std::memcpy(words.data(), values.data(), words.size() * sizeof(float));
    return device(words);
  }
  // A host KV cache (paged_batch.h) copied to the device, pools pointing at the copies.
  struct DeviceKv {
    Buffer k, v, k_scales, v_scales;
    KvPools pools;
  };
  DeviceKv device_kv(const HostKv& kv) {
    DeviceKv d{device(kv.k), device(kv.v), device(kv.k_scales), device(kv.v_scales), kv.pools};
    d.pools.k = d.k.data();
    d.pools.v = d.v.data();
    if (kv_has_scales(kv.pools.dtype)) {
      d.pools.k_scales = d.k_scales.data();
      d.pools.v_scales = d.v_scales.data();
    }
    return d;
  }
  std::vector<float> host(const float* device_ptr, size_t n) {
    std::vector<float> out(n);
    be().copy_to_host(out.data(), device_ptr, n);
    return out;
  }

  // matmul_same_input over three matrices of k columns (the second without a bias) against one
  // matmul each, on a random x of m rows: the outputs must be equal bit for bit.
  void expect_same_input_equals_one_call_each(const std::vector<Tensor>& dw, int64_t m, int64_t k,
                                              std::string_view what) {
    ASSERT_EQ(dw.size(), 3u);
    Buffer dx = device(random_vector(size_t(m * k), rng_));
    std::vector<Buffer> bias, together, apart;
    for (size_t p = 0; p < dw.size(); ++p) {
      const int64_t n = dw[p].dim(0);
      bias.push_back(device(random_vector(size_t(n), rng_)));
      together.push_back(poisoned(size_t(m * n)));
      apart.push_back(poisoned(size_t(m * n)));
      be().matmul(dx.data(), m, k, dw[p], p == 1 ? nullptr : bias[p].data(), apart[p].data());
    }
    be().matmul_same_input(dx.data(), m, k,
                           {{&dw[0], bias[0].data(), together[0].data()},
                            {&dw[1], nullptr, together[1].data()},
                            {&dw[2], bias[2].data(), together[2].data()}});
    for (size_t p = 0; p < dw.size(); ++p) {
      const size_t n = size_t(m * dw[p].dim(0));
      EXPECT_EQ(host(together[p].data(), n), host(apart[p].data(), n)) << what << " m=" << m << " part " << p;
    }
  }

  // matmul_swiglu(gate, up) gives exactly what the two matmuls and silu_mul give, with and
  // without biases.
  void expect_swiglu_equals_apart(const Tensor& gate, const Tensor& up, int64_t m, int64_t k, std::string_view what) {
    const int64_t ff = gate.dim(0);
    for (bool with_bias : {false, true}) {
      Buffer dx = device(random_vector(size_t(m * k), rng_));
      Buffer bg = device(random_vector(size_t(ff), rng_)), bu = device(random_vector(size_t(ff), rng_));
      const float* gate_bias = with_bias ? bg.data() : nullptr;
      const float* up_bias = with_bias ? bu.data() : nullptr;
      Buffer g_apart = poisoned(size_t(m * ff)), u_apart = poisoned(size_t(m * ff));
      be().matmul(dx.data(), m, k, gate, gate_bias, g_apart.data());
      be().matmul(dx.data(), m, k, up, up_bias, u_apart.data());
      be().silu_mul(g_apart.data(), u_apart.data(), g_apart.data(), m * ff);
      Buffer g_fused = poisoned(size_t(m * ff)), u_scratch = poisoned(size_t(m * ff));
      be().matmul_swiglu(dx.data(), m, k, {&gate, gate_bias, g_fused.data()}, {&up, up_bias, u_scratch.data()});
      EXPECT_EQ(host(g_fused.data(), size_t(m * ff)), host(g_apart.data(), size_t(m * ff)))
          << what << " m=" << m << " bias=" << with_bias;
    }
  }

 protected:
  std::mt19937 rng_{1234};
  static inline std::unique_ptr<CudaBackend> backend_;
  static inline std::string skip_reason_;
};

}  // namespace
}  // namespace brisk
