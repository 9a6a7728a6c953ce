// brisk quantize: a Hugging Face model folder in, a quantized model folder out (model.safetensors
// in a compressed-tensors layout, config.json with "quantization_config", tokenizer files copied).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "compress/quantize.h"

namespace brisk {

enum class HeadPolicy { Keep, Quantize };  // the output head (lm_head) stays in its dtype by default

// What a calibrated method decided (compress/calibrated_quantize.h): tensors whose values it
// changed (folded norms and producer rows; matrices as [out, in]) and matrices whose codes it
// chose. Anything not listed is taken from the input checkpoint, RTN for matrices.
struct MethodOverrides {
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, QuantizedMatrix> matrices;
};

struct QuantizeModelOptions {
  std::filesystem::path in, out;
  QuantSpec spec;
  HeadPolicy head = HeadPolicy::Keep;
  const MethodOverrides* overrides = nullptr;
  int threads = 0;  // CPU threads for RTN (0: all cores)
};

struct QuantizeModelReport {
  int64_t quantized = 0;              // matrices quantized
  std::vector<std::string> kept;      // matrices left in their dtype (the head)
  uint64_t bytes_in = 0, bytes_out = 0;  // model.safetensors payload before / after
  double seconds = 0;
};

// progress(matrices done, matrices total)
Result<QuantizeModelReport> quantize_model(const QuantizeModelOptions& options,
                                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace brisk
