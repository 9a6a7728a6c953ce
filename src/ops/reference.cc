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

}  // namespace

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
