// Quantization specs and the one entry point every method builds on: "quantize this fp32 matrix
// with this spec" into a runtime block tensor (core/quant_blocks.h). RTN lives here; calibrated
// methods (GPTQ, AWQ, SmoothQuant) choose codes with the same grid (choose_params/nearest_code)
// and hand them to encode_matrix.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace brisk {

enum class QuantScheme { W8, W4, W8A8, FP8, NF4, LOG2 };
enum class QuantMethod { Rtn };

struct QuantSpec {
  QuantScheme scheme = QuantScheme::W4;
  QuantMethod method = QuantMethod::Rtn;
  int64_t group = 128;  // values per scale for 4-bit schemes (multiple of 128); per-channel schemes ignore it
  Symmetry symmetry = Symmetry::Symmetric;
};

Result<QuantScheme> parse_quant_scheme(std::string_view name);  // "w8", "w4", "w8a8", "fp8", "nf4", "log2"
std::string_view quant_scheme_name(QuantScheme scheme);
DType runtime_dtype(QuantScheme scheme);
// Checks the combination (asymmetric only with a zero point, group a multiple of 128).
Status validate_quant_spec(const QuantSpec& spec);

// A runtime block tensor with its own memory.
struct QuantizedMatrix {
  std::shared_ptr<uint8_t[]> bytes;
  Tensor tensor;  // [rows, cols], dtype runtime_dtype(spec.scheme)
};

// RTN: each group (or output row) gets absmax / min-max params and nearest codes. `name` is the
// tensor for errors (e.g. a group size that does not divide cols). Rows are split over `pool`
// when one is given (an 8B model is ~7e9 values: minutes on one core).
Result<QuantizedMatrix> quantize_matrix(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                        const std::string& name, ThreadPool* pool = nullptr);

// For methods that pick codes themselves: codes [rows, cols] and params [rows, cols / group]
// (one per row for per-channel schemes) packed into runtime blocks.
QuantizedMatrix encode_matrix(const int32_t* codes, const GroupParams* params, int64_t rows, int64_t cols,
                              const QuantSpec& spec);

}  // namespace brisk
