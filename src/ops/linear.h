// The seam between models and weight storage: a model multiplies by a Linear slot, never by a raw
// tensor. What the slot holds (dense F32/F16/BF16, block-quantized; later a sparse, low-rank or
// sharded form) is decided at load from the checkpoint, and the backend picks the kernels.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace brisk {

// y[m, out] = x[m, in] · weight^T (+ bias); low-rank (brisk lowrank), two products through a
// rank-wide middle: y = (x · input_factor^T) · weight^T (+ bias).
struct Linear {
  Tensor weight;        // [out, in], or [out, rank] when factored; in the backend's memory and layout
  Tensor bias;          // [out] fp32 in the backend's memory, or empty
  Tensor input_factor;  // [rank, in] when factored, else empty

  bool factored() const { return !input_factor.empty(); }
  int64_t rank() const { return factored() ? input_factor.dim(0) : 0; }
  int64_t in_features() const { return factored() ? input_factor.dim(1) : weight.dim(1); }
  int64_t out_features() const { return weight.dim(0); }
  const float* bias_data() const { return bias.empty() ? nullptr : bias.as<float>(); }
};

}  // namespace brisk
