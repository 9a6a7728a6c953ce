#include "compress/fake_quantize.h"

namespace brisk {

Result<std::vector<float>> fake_quantize(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                         const std::string& name) {
  BRISK_ASSIGN(packed, quantize_matrix(w, rows, cols, spec, name));
  std::vector<float> out(size_t(rows * cols));
  decode_rows(packed.bytes.get(), packed.tensor.dtype, rows, cols, out.data());
  return out;
}

}  // namespace brisk
