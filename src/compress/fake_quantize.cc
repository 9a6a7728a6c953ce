#include "compress/fake_quantize.h"

namespace brisk {

Result<std::vector<float>> fake_quantize(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                         const std::string& name) {
  BRISK_ASSIGN(packed, quantize_matrix(w, rows, cols, spec, name));
  const QuantTraits* traits = quant_traits(packed.tensor.dtype);
  BRISK_CHECK(traits != nullptr, "fake_quantize: quantize_matrix returned a plain dtype");
  const size_t stride = row_bytes(packed.tensor.dtype, cols);
  std::vector<float> out(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    traits->dequantize_row(packed.bytes.get() + size_t(r) * stride, cols, out.data() + r * cols);
  return out;
}

}  // namespace brisk
