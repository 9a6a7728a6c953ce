// brisk quantize --method gptq|awq|smoothquant: runs a calibrated method (calib_pipeline.h) on a
// model folder and turns its result into what quantize_model writes: the codes GPTQ/AWQ chose
// for each 4-bit matrix, and every weight the method changed (folded norms, scaled rows), which
// the writer stores in place of the checkpoint's (SmoothQuant's smoothed matrices are then RTN
// quantized per channel, as the paper does).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "compress/quantize_model.h"

namespace brisk {

struct CalibratedQuantizeOptions {
  std::filesystem::path model_dir;
  QuantSpec spec;
  std::string method;                      // "gptq", "awq", "smoothquant"
  std::vector<int32_t> calibration_tokens;
  int64_t max_tokens = 65536;              // calibration tokens used
  int threads = 0;
};

Result<MethodOverrides> calibrated_overrides(const CalibratedQuantizeOptions& options);

}  // namespace brisk
