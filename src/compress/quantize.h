// The quantization spec, the one every method reads (RTN here; GPTQ, AWQ and SmoothQuant in
// compress/calib_*), and the one entry point they build on: "quantize this fp32 matrix with this
// spec" into a runtime block tensor (core/quant_blocks.h). RTN lives here; the calibrated methods
// choose codes on the same grid (choose_params / params_for_range / nearest_code, through
// compress/calib_grid.h) and hand them to encode_matrix.
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
struct QuantSpec {
  QuantScheme scheme = QuantScheme::W4;
  // Values per scale for grouped (4-bit) schemes; per-channel schemes (w8, w8a8, fp8) use one
  // scale per output row and ignore it. The runtime blocks need a multiple of 128
  // (validate_quant_spec); calibrated methods accept any divisor of the columns for study.
  int64_t group = 128;
  Symmetry symmetry = Symmetry::Symmetric;
};

Result<QuantScheme> parse_quant_scheme(std::string_view name);  // "w8", "w4", "w8a8", "fp8", "nf4", "log2"
std::string_view quant_scheme_name(QuantScheme scheme);
DType runtime_dtype(QuantScheme scheme);
const QuantTraits& scheme_traits(QuantScheme scheme);
// Values per scale in a row of `cols` (the whole row for per-channel schemes), and groups per row.
int64_t group_width(const QuantSpec& spec, int64_t cols);
int64_t groups_per_row(const QuantSpec& spec, int64_t cols);
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
