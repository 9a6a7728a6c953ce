// Quantized weights on CUDA against the scalar references: the upload's repack, the GEMVs
// (int8 activations per 32 values for Q8/Q4/NF4/LOG4; fp32 x for F8/Q8A8), the int8 / fp8
// cuBLASLt GEMMs (Q8A8 / F8 at m > 8), the mixed-input bf16 GEMM (Q8 / Q4 / NF4 / LOG4 at m > 8)
// and the dequantize-to-bf16 GEMM path (Q8A8 / F8 shapes cuBLASLt does not take).
#include "cuda_ops_fixture.h"
#include "backends/cuda/quant_gemm_mixed.cuh"

namespace brisk {
namespace {

// ---- quantized matmul ------------------------------------------------------------------------

const DType kBlockDtypes[] = {DType::Q8, DType::Q8A8, DType::F8, DType::Q4, DType::NF4, DType::LOG4};

// A [n, k] matrix quantized with RTN into host blocks (Q4: asymmetric when asked).
struct HostQuantWeight {
  std::vector<uint8_t> bytes;
  Tensor tensor;
};

HostQuantWeight make_quant_weight(DType dtype, int64_t n, int64_t k, Symmetry sym, std::mt19937& rng) {
  const std::vector<float> w = random_vector(size_t(n * k), rng, 0.5f);
  HostQuantWeight q;
  const size_t rb = row_bytes(dtype, k);
  q.bytes.resize(rb * size_t(n));
  for (int64_t r = 0; r < n; ++r)
    quantize_row(*quant_traits(dtype), w.data() + r * k, k, 128, sym, q.bytes.data() + size_t(r) * rb);
  q.tensor = Tensor{q.bytes.data(), dtype, {n, k}};
  return q;
}

// No GPU needed: the upload's repack keeps every value (and never grows the tensor).
TEST(CudaQuantLayout, RepackKeepsEveryValue) {
  std::mt19937 rng(5);
  for (DType dtype : kBlockDtypes)
    for (int64_t k : {int64_t(300), int64_t(256), int64_t(1000), int64_t(128)})
      for (Symmetry sym : {Symmetry::Symmetric, Symmetry::Asymmetric}) {
        if (sym == Symmetry::Asymmetric && dtype != DType::Q4) continue;
        const int64_t n = 7;
        HostQuantWeight q = make_quant_weight(dtype, n, k, sym, rng);
        const cuda::QuantDeviceLayout layout = cuda::quant_device_layout(dtype, n, k);
        EXPECT_LE(layout.bytes, q.tensor.nbytes());
        EXPECT_EQ(layout.params_offset % 16, 0u);
        std::vector<uint8_t> packed(layout.bytes);
        cuda::repack_for_device(q.tensor, packed.data());
        std::vector<float> row(static_cast<size_t>(k));
        for (int64_t r = 0; r < n; ++r) {
          quant_traits(dtype)->dequantize_row(q.bytes.data() + size_t(r) * row_bytes(dtype, k), k, row.data());
          for (int64_t c = 0; c < k; ++c)
            ASSERT_EQ(cuda::repacked_value(dtype, packed.data(), n, k, r, c), row[size_t(c)])
                << dtype_name(dtype) << " k=" << k << " at " << r << "," << c;
        }
      }
}

// What the GEMM path (m > 8) multiplies: x rounded to bf16 (Q8A8: after its per-token int8
// snap) and the weights dequantized and rounded to bf16.
struct DenseReference {
  std::vector<float> x;
  std::vector<uint16_t> w;
  Tensor tensor;
};

DenseReference gemm_operands(const std::vector<float>& x, int64_t m, int64_t k, const HostQuantWeight& q) {
  DenseReference d;
  const DType dtype = q.tensor.dtype;
  const int64_t n = q.tensor.dim(0);
  d.x = x;
  if (dtype == DType::Q8A8) {
    std::vector<uint8_t> codes(static_cast<size_t>(k));
    for (int64_t i = 0; i < m; ++i) {
      const float scale = quantize_activation_row_u8(x.data() + i * k, k, k, codes.data());
      for (int64_t p = 0; p < k; ++p) d.x[size_t(i * k + p)] = float(int(codes[size_t(p)]) - 128) * scale;
    }
  }
  d.x = round_to(DType::BF16, d.x);
  std::vector<float> row(static_cast<size_t>(k));
  d.w.resize(size_t(n * k));
  for (int64_t r = 0; r < n; ++r) {
    quant_traits(dtype)->dequantize_row(q.bytes.data() + size_t(r) * row_bytes(dtype, k), k, row.data());
    for (int64_t c = 0; c < k; ++c) d.w[size_t(r * k + c)] = f32_to_bf16(row[size_t(c)]);
  }
  d.tensor = Tensor{d.w.data(), DType::BF16, {n, k}};
  return d;
}

// What the int8 / fp8 GEMM path (Q8A8 / F8 at m > 8, quant_gemm.cuh) computes, operation for
// operation: x coded per token (int8: quantize_activation_row_u8; fp8: f32_to_e4m3(x * 448 /
// absmax)), exact sums of code products, then ((float(sum) * sx) * sw) + bias in fp32.
// abs_sums[i, j] = sx * sw * sum |code products|: the scale of fp8 accumulation error.
struct LowPrecisionReference {
  std::vector<float> y, abs_sums;
};

LowPrecisionReference low_precision_reference(const std::vector<float>& x, int64_t m, int64_t k,
                                              const HostQuantWeight& q, const float* bias) {
  const DType dtype = q.tensor.dtype;
  const bool int8 = dtype == DType::Q8A8;
  const int64_t n = q.tensor.dim(0);
  const size_t rb = row_bytes(dtype, k);
  // Weight levels and row scales straight from the host blocks.
  std::vector<double> wl(size_t(n * k));
  std::vector<float> sw(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = q.bytes.data() + size_t(r) * rb;
    for (int64_t c = 0; c < k; ++c) {
      if (int8) {
        const auto* b = reinterpret_cast<const BlockQ8A8*>(row) + c / 256;
        wl[size_t(r * k + c)] = double(b->q[c % 256]);
        sw[size_t(r)] = b->scale;
      } else {
        const auto* b = reinterpret_cast<const BlockF8*>(row) + c / 256;
        wl[size_t(r * k + c)] = double(e4m3_to_f32(b->q[c % 256]));
        sw[size_t(r)] = b->scale;
      }
    }
  }
  LowPrecisionReference out;
  out.y.resize(size_t(m * n));
  out.abs_sums.resize(size_t(m * n));
  std::vector<double> xl(static_cast<size_t>(k));
  std::vector<uint8_t> u8(static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x.data() + i * k;
    float sx;
    if (int8) {
      sx = quantize_activation_row_u8(xi, k, k, u8.data());
      for (int64_t p = 0; p < k; ++p) xl[size_t(p)] = double(int(u8[size_t(p)]) - 128);
    } else {
      float absmax = 0.0f;
      for (int64_t p = 0; p < k; ++p) absmax = std::max(absmax, std::fabs(xi[p]));
      const float inv = absmax > 0.0f ? 448.0f / absmax : 0.0f;
      sx = absmax / 448.0f;
      for (int64_t p = 0; p < k; ++p) xl[size_t(p)] = double(e4m3_to_f32(f32_to_e4m3(xi[p] * inv)));
    }
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0, abs_sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double prod = xl[size_t(p)] * wl[size_t(j * k + p)];
        sum += prod;
        abs_sum += std::fabs(prod);
      }
      const float scaled = (float(sum) * sx) * sw[size_t(j)];
      out.y[size_t(i * n + j)] = bias ? scaled + bias[j] : scaled;
      out.abs_sums[size_t(i * n + j)] = float(abs_sum) * sx * sw[size_t(j)];
    }
  }
  return out;
}

// Checks y of the int8 / fp8 GEMM path. Int8: the sums are exact and the epilogue's steps are the
// reference's, so y should match bit for bit (1e-6 leaves room for nothing but that). Fp8: the
// products are exact in fp32, but Hopper's fp8 tensor cores add with fewer mantissa bits than fp32
// (~14) between cuBLASLt's promotions to fp32, so a term's error is bounded by a few 2^-14 of the
// sum of |products| it was added into (per element); the L2 bound is the printed value's ceiling.
void expect_low_precision_gemm(const std::string& name, DType dtype, const std::vector<float>& got,
                               const LowPrecisionReference& want, const std::vector<float>& exact) {
  const bool int8 = dtype == DType::Q8A8;
  const double err = report(name + " path=" + (int8 ? "int8" : "fp8"), got, want.y);
  EXPECT_LT(err, int8 ? 1e-6 : 1e-3) << name;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = int8 ? 1e-6 * std::fabs(want.y[i]) + 1e-30
                            : 1e-5 * std::fabs(want.y[i]) + 2.5e-4 * want.abs_sums[i];
    if (!(std::fabs(double(got[i]) - double(want.y[i])) <= tol) && bad++ < 3)
      ADD_FAILURE() << name << " at " << i << ": got " << got[i] << " want " << want.y[i];
  }
  EXPECT_EQ(bad, 0u) << name;
  // Against ref::matmul: w8a8 is the same arithmetic (double sums there); fp8 also rounds x to
  // e4m3 (3 mantissa bits, ~2.5% rms per value), which the CPU and the GEMV do not.
  EXPECT_LT(relative_l2(got, exact), int8 ? 1e-5 : 6e-2) << name;
}

TEST_F(CudaOps, QuantizedMatmulInt8AndFp8Gemm) {
  struct Case {
    int64_t n, k;
    bool bias;
    size_t misalign;  // x and y 4 bytes off: scalar x loads, accumulators in scratch
  };
  // k = 1000: the GEMM's depth (1008) reaches into the rows' zero padding; 4096: whole blocks.
  const std::vector<Case> cases = {{128, 1000, true, 0}, {96, 4096, false, 0}, {64, 1000, false, 1}};
  for (DType dtype : {DType::Q8A8, DType::F8})
    for (int64_t m : {int64_t(9), int64_t(33), int64_t(300), int64_t(2048)})
      for (const Case& c : cases) {
        HostQuantWeight q = make_quant_weight(dtype, c.n, c.k, Symmetry::Symmetric, rng_);
        const Tensor dw = be().upload(q.tensor);
        ASSERT_TRUE(be().uses_low_precision_gemm(m, c.k, dw)) << dtype_name(dtype);
        const std::vector<float> x = random_vector(size_t(m * c.k), rng_);
        const std::vector<float> bias = random_vector(size_t(c.n), rng_);
        const float* b = c.bias ? bias.data() : nullptr;
        Buffer dx = device(x, c.misalign), db = device(bias), dy = poisoned(size_t(m * c.n), c.misalign);
        be().matmul(dx.data() + c.misalign, m, c.k, dw, c.bias ? db.data() : nullptr, dy.data() + c.misalign);
        const std::vector<float> got = host(dy.data() + c.misalign, size_t(m * c.n));
        std::vector<float> exact(size_t(m * c.n));
        ref::matmul(x.data(), m, c.k, q.tensor, b, exact.data());
        const std::string name = "matmul dtype=" + std::string(dtype_name(dtype)) + " m=" + std::to_string(m) +
                                 " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) +
                                 " bias=" + std::to_string(c.bias) + " misalign=" + std::to_string(c.misalign);
        expect_low_precision_gemm(name, dtype, got, low_precision_reference(x, m, c.k, q, b), exact);
      }
}

// What the mixed-input GEMM (Q8 / Q4 / NF4 / LOG4 at m > 8, quant_gemm_mixed.cuh) computes: x
// rounded to bf16, times each weight's level (NF4 / LOG4: rounded to bf16) minus its zero point,
// summed per group and scaled by the group's (Q8: the row's) scale; here in double.
std::vector<float> mixed_gemm_reference(const std::vector<float>& x, int64_t m, int64_t k, const HostQuantWeight& q,
                                        const float* bias) {
  const QuantTraits& traits = *quant_traits(q.tensor.dtype);
  const int64_t n = q.tensor.dim(0), group = traits.per_channel ? k : 128, groups = (k + group - 1) / group;
  const std::vector<float> xb = round_to(DType::BF16, x);
  std::vector<int32_t> codes(size_t(groups * group));
  std::vector<GroupParams> params(static_cast<size_t>(groups));
  std::vector<double> w(static_cast<size_t>(k));
  std::vector<float> y(size_t(m * n));
  for (int64_t r = 0; r < n; ++r) {
    traits.decode_row(q.bytes.data() + size_t(r) * row_bytes(q.tensor.dtype, k), k, group, codes.data(), params.data());
    for (int64_t c = 0; c < k; ++c) {
      const int32_t code = codes[size_t(c)];
      const float level = traits.levels ? bf16_to_f32(f32_to_bf16(traits.levels[code])) : float(code);
      w[size_t(c)] = double(level) - params[size_t(c / group)].zero;
    }
    for (int64_t i = 0; i < m; ++i) {
      double sum = 0;
      for (int64_t g = 0; g < groups; ++g) {
        double part = 0;
        for (int64_t c = g * group; c < std::min(k, (g + 1) * group); ++c)
          part += double(xb[size_t(i * k + c)]) * w[size_t(c)];
        sum += part * params[size_t(g)].scale;
      }
      y[size_t(i * n + r)] = float(sum) + (bias ? bias[r] : 0.0f);
    }
  }
  return y;
}

// The mixed-input GEMM on random shapes: token counts that fill a block's 16, 32 or 64 tokens
// exactly, partly, or spill into more blocks; row counts that are not whole 128-row tiles; depths
// from one 4-bit group to many (split over blocks or not, wrapping the ring or not); 4-bit zero
// points. Within 1e-5 of the reference (only the order of fp32 sums differs).
TEST_F(CudaOps, QuantizedMixedGemmMatchesReference) {
  const DType dtypes[] = {DType::Q8, DType::Q4, DType::NF4, DType::LOG4};
  // Both kernels on every shape (the warpgroup one where the GPU has it; elsewhere the pin falls
  // back to the warp kernel), then the automatic choice.
  for (cuda::MixedGemmPath path : {cuda::MixedGemmPath::Warp, cuda::MixedGemmPath::Warpgroup, cuda::MixedGemmPath::Auto}) {
    cuda::pin_mixed_gemm_path(path);
    for (int trial = 0; trial < 32; ++trial) {
      const DType dtype = dtypes[trial % 4];
      const Symmetry sym = dtype == DType::Q4 && trial % 8 == 5 ? Symmetry::Asymmetric : Symmetry::Symmetric;
      const int64_t m = std::uniform_int_distribution<int64_t>(9, 150)(rng_);
      const int64_t n = std::uniform_int_distribution<int64_t>(1, trial % 3 ? 200 : 700)(rng_);
      const int64_t k = 128 * std::uniform_int_distribution<int64_t>(1, 24)(rng_) - (trial % 3) * 37;
      const bool with_bias = trial % 5 == 0;
      HostQuantWeight q = make_quant_weight(dtype, n, k, sym, rng_);
      const Tensor dw = be().upload(q.tensor);
      const std::vector<float> x = random_vector(size_t(m * k), rng_);
      const std::vector<float> bias = random_vector(size_t(n), rng_);
      Buffer dx = device(x), db = device(bias), dy = poisoned(size_t(m * n));
      be().matmul(dx.data(), m, k, dw, with_bias ? db.data() : nullptr, dy.data());
      const std::vector<float> want = mixed_gemm_reference(x, m, k, q, with_bias ? bias.data() : nullptr);
      const std::string name = std::string(path == cuda::MixedGemmPath::Warp        ? "warp"
                                           : path == cuda::MixedGemmPath::Warpgroup ? "warpgroup"
                                                                                    : "auto") +
                               " mixed gemm dtype=" + std::string(dtype_name(dtype)) +
                               (sym == Symmetry::Asymmetric ? "-asym" : "") + " m=" + std::to_string(m) +
                               " n=" + std::to_string(n) + " k=" + std::to_string(k);
      EXPECT_LT(report(name, host(dy.data(), size_t(m * n)), want), 1e-5) << name;
    }
  }
}

// q/k/v-like quantized matrices through matmul_same_input (x quantized once for the int8 GEMV
// formats) give exactly what one matmul per matrix gives, at every m and for every block dtype.
TEST_F(CudaOps, QuantizedMatmulSameInputEqualsOneCallEach) {
  const int64_t k = 1000;
  const std::vector<int64_t> rows = {96, 40, 40};
  for (DType dtype : kBlockDtypes)
    for (int64_t m : {int64_t(1), int64_t(5), int64_t(8), int64_t(12)}) {
      std::vector<HostQuantWeight> hq;
      std::vector<Tensor> dw;
      for (int64_t n : rows) {
        hq.push_back(make_quant_weight(dtype, n, k, Symmetry::Symmetric, rng_));
        dw.push_back(be().upload(hq.back().tensor));
      }
      expect_same_input_equals_one_call_each(dw, m, k, dtype_name(dtype));
    }
}

// Quantized gate/up through matmul_swiglu: the int8 GEMV's SwiGLU epilogue (m <= 8) or the
// separate matmuls and silu_mul; either way exactly what those give.
TEST_F(CudaOps, QuantizedMatmulSwigluEqualsApart) {
  const int64_t k = 1000, ff = 136;
  for (DType dtype : kBlockDtypes) {
    const HostQuantWeight hg = make_quant_weight(dtype, ff, k, Symmetry::Symmetric, rng_);
    // Q4's up matrix with zero points: the code-sum correction in the fused epilogue's inputs.
    const HostQuantWeight hu =
        make_quant_weight(dtype, ff, k, dtype == DType::Q4 ? Symmetry::Asymmetric : Symmetry::Symmetric, rng_);
    const Tensor gate = be().upload(hg.tensor), up = be().upload(hu.tensor);
    for (int64_t m : {int64_t(1), int64_t(5), int64_t(8), int64_t(12)})
      expect_swiglu_equals_apart(gate, up, m, k, dtype_name(dtype));
  }
}

TEST_F(CudaOps, QuantizedMatmul) {
  // k = 300 and 1000: not whole blocks (padded rows); 4100: two x chunks at m = 8 in the fp32
  // GEMV (F8, Q8A8); 13000: three chunks at m = 8 in the int8 GEMV.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{77, 300}, {256, 1024}, {130, 4100}, {5, 1000}, {40, 13000}};
  for (DType dtype : kBlockDtypes)
    for (int64_t m : {int64_t(1), int64_t(2), int64_t(5), int64_t(8), int64_t(33), int64_t(300)})
      for (size_t s = 0; s < shapes.size(); ++s) {
        const auto [n, k] = shapes[s];
        const Symmetry sym = dtype == DType::Q4 && (m + int64_t(s)) % 2 ? Symmetry::Asymmetric : Symmetry::Symmetric;
        const bool with_bias = s % 2 == 1;
        const size_t misalign = m % 2;  // x and y 4 bytes off 16-byte alignment
        HostQuantWeight q = make_quant_weight(dtype, n, k, sym, rng_);
        const Tensor dw = be().upload(q.tensor);
        ASSERT_EQ(dw.device, Device::CUDA);
        ASSERT_EQ(dw.dtype, dtype);
        const std::vector<float> x = random_vector(size_t(m * k), rng_);
        const std::vector<float> bias = random_vector(size_t(n), rng_);
        const float* b = with_bias ? bias.data() : nullptr;
        Buffer dx = device(x, misalign), db = device(bias), dy = poisoned(size_t(m * n), misalign);
        be().matmul(dx.data() + misalign, m, k, dw, with_bias ? db.data() : nullptr, dy.data() + misalign);
        const std::vector<float> got = host(dy.data() + misalign, size_t(m * n));

        std::vector<float> exact(size_t(m * n));
        ref::matmul(x.data(), m, k, q.tensor, b, exact.data());
        const std::string name = "matmul dtype=" + std::string(dtype_name(dtype)) +
                                 (sym == Symmetry::Asymmetric ? "-asym" : "") + " m=" + std::to_string(m) +
                                 " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                                 " bias=" + std::to_string(with_bias) + " misalign=" + std::to_string(misalign);
        if (be().uses_low_precision_gemm(m, k, dw)) {  // Q8A8 / F8 with n % 4 == 0
          expect_low_precision_gemm(name, dtype, got, low_precision_reference(x, m, k, q, b), exact);
          continue;
        }
        std::vector<float> want = exact;
        // The GEMV of Q8, Q4, NF4, LOG4 runs on int8 activations (per 32 values) with integer dot
        // products, as the CPU does: only the order of fp32 sums of block products differs. Their
        // GEMM (m > 8) multiplies bf16 x by exact weights (mixed_gemm_reference).
        const bool int8_gemv = m <= 8 && dtype != DType::Q8A8 && dtype != DType::F8;
        const bool mixed_gemm = m > 8 && dtype != DType::Q8A8 && dtype != DType::F8;
        double bound = 1e-4;
        if (int8_gemv) {
          ref::matmul_int8_activations(x.data(), m, k, q.tensor, b, want.data());
          bound = 1e-5;
        } else if (mixed_gemm) {
          want = mixed_gemm_reference(x, m, k, q, b);
          bound = 1e-5;
        } else if (m > 8) {  // Q8A8 / F8 shapes the cuBLASLt kernels do not take: bf16 operands, fp32 sums
          const DenseReference d = gemm_operands(x, m, k, q);
          ref::matmul(d.x.data(), m, k, d.tensor, b, want.data());
        }
        EXPECT_LT(report(name, got, want), bound) << name;
        // Against fp32 activations: int8 activations per 32 values add their own rounding (1.4e-2
        // measured on a 5-row NF4 shape on the H100), so that path gets a wider sanity bound.
        EXPECT_LT(relative_l2(got, exact), int8_gemv ? 3e-2 : 1e-2) << name;
      }
}

}  // namespace
}  // namespace brisk
