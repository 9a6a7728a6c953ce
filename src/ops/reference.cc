#include "ops/reference.h"

#include "core/dtype.h"
#include "core/error.h"

namespace brisk::ref {

// matmul
void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias, float* y) {
  BRISK_CHECK(w.rank() == 2 && w.dim(1) == k, "ref::matmul: w must be [n, k]");
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
