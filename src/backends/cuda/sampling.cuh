// Token choice on the device: the logits rows stay in device memory and only the ids travel.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/sampling.h"

namespace brisk::cuda {

// ids[r] = argmax of logits row r ([rows, vocab] in device memory), the lowest index on a tie
// (as std::max_element, which the host sampler uses); ids in device memory.
void argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids, cudaStream_t stream);

// ids[r] = the token drawn from logits row r as ops/sampling.h defines it (Backend::sample_rows):
// params [rows], counts, allowed (may be null) and ids in device memory; logits edited in place.
void sample_rows(float* logits, int64_t rows, int64_t vocab, const SampleRowParams* params,
                 const TokenCount* counts, const uint32_t* allowed, int32_t* ids, cudaStream_t stream);

}  // namespace brisk::cuda
