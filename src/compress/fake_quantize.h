// Quantization-aware training's view of a weight (issue 21, --qat): the forward pass computes with
// the weight quantized by RTN under a QuantSpec and dequantized, exactly the values the quantized
// model will compute with (ref::matmul on the packed blocks); the backward pass treats the rounding
// as the identity (the straight-through estimator, Bengio et al. 2013), so the fp32 master weight
// takes the gradient unchanged.
#pragma once

#include <string>
#include <vector>

#include "compress/quantize.h"

namespace brisk {

// w [rows, cols] -> dequantize(quantize_rtn(w)); `name` names the tensor in errors (a group size
// that does not divide cols).
Result<std::vector<float>> fake_quantize(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec,
                                         const std::string& name);

}  // namespace brisk
