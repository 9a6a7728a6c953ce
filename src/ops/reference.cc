#include "ops/reference.h"

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant_blocks.h"

#include <vector>

namespace brisk::ref {

// matmul
namespace {

// Block formats: each weight row decoded with the format's scalar dequantizer; w8a8 first
// quantizes each activation row per token exactly as its kernels do.
void matmul_blocks(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) {
  const QuantTraits& t = *quant_traits(w.dtype);
  const int64_t n = w.dim(0);
  const size_t rb = row_bytes(w.dtype, k);
  std::vector<float> wrow(static_cast<size_t>(k)), xrow(static_cast<size_t>(k));
  std::vector<uint8_t> xq(static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    if (w.dtype == DType::Q8A8) {
      const float sx = quantize_activation_row_u8(xi, k, k, xq.data());
      for (int64_t p = 0; p < k; ++p) xrow[size_t(p)] = float(int(xq[size_t(p)]) - 128) * sx;
      xi = xrow.data();
    }
    for (int64_t j = 0; j < n; ++j) {
      t.dequantize_row(static_cast<const uint8_t*>(w.data) + size_t(j) * rb, k, wrow.data());
      double sum = bias ? double(bias[j]) : 0.0;
      for (int64_t p = 0; p < k; ++p) sum += double(xi[p]) * double(wrow[size_t(p)]);
      y[i * n + j] = float(sum);
    }
  }
}

// A weight row as the integer kernels see it: codebook levels replaced by their int8 versions.
void dequantize_row_int8_levels(const QuantTraits& t, const void* blocks, int64_t k, float* out) {
  const Int8Codebook* book = int8_codebook(t.dtype);
  if (!book) return t.dequantize_row(blocks, k, out);
  const int64_t group = t.block;
  std::vector<int32_t> codes(static_cast<size_t>(k));
  std::vector<GroupParams> params(size_t((k + group - 1) / group));
  t.decode_row(blocks, k, group, codes.data(), params.data());
  for (int64_t p = 0; p < k; ++p) {
    const GroupParams& g = params[size_t(p / group)];
    out[p] = (float(book->level[codes[size_t(p)]]) * book->unit - float(g.zero)) * g.scale;
  }
}

}  // namespace

void matmul_int8_activations(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) {
  const QuantTraits* t = quant_traits(w.dtype);
  BRISK_CHECK(t && w.dtype != DType::Q8A8 && w.dtype != DType::F8 && w.rank() == 2 && w.dim(1) == k,
              "ref::matmul_int8_activations: w must be [n, k] in Q8, Q4, NF4 or LOG4");
  const int64_t n = w.dim(0);
  const int64_t padded = (k + kActivationBlock - 1) / kActivationBlock * kActivationBlock;
  const size_t rb = row_bytes(w.dtype, k);
  std::vector<int8_t> codes(static_cast<size_t>(padded));
  std::vector<float> scales(size_t(padded / kActivationBlock)), xrow(static_cast<size_t>(k)),
      wrow(static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    quantize_activation_blocks(x + i * k, k, padded, codes.data(), scales.data());
    for (int64_t p = 0; p < k; ++p) xrow[size_t(p)] = float(codes[size_t(p)]) * scales[size_t(p / kActivationBlock)];
    for (int64_t j = 0; j < n; ++j) {
      dequantize_row_int8_levels(*t, static_cast<const uint8_t*>(w.data) + size_t(j) * rb, k, wrow.data());
      double sum = bias ? double(bias[j]) : 0.0;
      for (int64_t p = 0; p < k; ++p) sum += double(xrow[size_t(p)]) * double(wrow[size_t(p)]);
      y[i * n + j] = float(sum);
    }
  }
}

void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) {
  BRISK_CHECK(w.rank() == 2 && w.dim(1) == k, "ref::matmul: w must be [n, k]");
  if (is_block_dtype(w.dtype)) return matmul_blocks(x, m, k, w, bias, y);
  int64_t n = w.dim(0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = bias ? double(bias[j]) : 0.0;
      for (int64_t p = 0; p < k; ++p)
        sum += double(x[i * k + p]) * double(load_as_f32(w.data, w.dtype, size_t(j * k + p)));
      y[i * n + j] = float(sum);
    }
  }
}

}  // namespace brisk::ref
