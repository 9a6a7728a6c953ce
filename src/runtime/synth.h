// Writes a Hugging Face model folder with random weights in the exact shape of a published model,
// so benchmarks can run on real sizes without downloads.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace brisk {

struct SynthOptions {
  std::string shape;          // one of synth_shape_names()
  std::filesystem::path out;  // created if missing; must be empty or absent
  DType dtype = DType::BF16;  // BF16, F16 or F32
  uint64_t seed = 0;
};

std::vector<std::string> synth_shape_names();
// progress(bytes_written, bytes_total)
Status synthesize_model(const SynthOptions& options,
                        const std::function<void(uint64_t, uint64_t)>& progress = {});

}  // namespace brisk
