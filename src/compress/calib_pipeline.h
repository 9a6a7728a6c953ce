// One call from a model folder and calibration tokens to quantized matrices: what
// `brisk quantize --method rtn|gptq|awq|smoothquant` and bench/calib_ppl run.
//
//   PipelineOptions o;  o.method = Method::Gptq;  o.spec = {QuantScheme::W4, 128, Symmetry::Asymmetric};
//   BRISK_ASSIGN(out, quantize_with_calibration(dir, tokens, o));
//   out.matrices   -> codes and params per calibrated matrix (pack() gives the runtime blocks)
//   out.weights    -> every fp32 weight after the method (folded norms, dequantized matrices);
//                     out.weights.bind_to(model) runs a loaded model with them (fake quantization)
//
// The matrices quantized are the decoder layers' linear layers; embeddings and the output head
// stay as they are.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "compress/awq.h"
#include "compress/gptq.h"
#include "compress/smoothquant.h"

namespace brisk::calib {

enum class Method { Rtn, Gptq, Awq, SmoothQuant };
const char* method_name(Method m);
Result<Method> parse_method(const std::string& name);  // "rtn", "gptq", "awq", "smoothquant"

enum class Sequential { Off, On };

struct PipelineOptions {
  Method method = Method::Gptq;
  QuantSpec spec;                  // weights (SmoothQuant: always kSmoothQuantWeights)
  GptqOptions gptq;
  AwqOptions awq;
  SmoothQuantOptions smoothquant;
  CalibrationOptions calibration;  // window, token budget; sample_rows is set for SmoothQuant
  // GPTQ only: calibrate layer l on the model with layers < l already quantized (the paper's
  // order), costing one calibration pass per layer.
  Sequential sequential = Sequential::On;
  int threads = 0;                 // CPU threads; 0: all
};

struct CalibratedModel {
  FloatWeights weights;
  std::map<std::string, UnpackedMatrix> matrices;
  std::map<std::string, float> alphas;  // AWQ / SmoothQuant: per scale group (first consumer)
  int64_t calibration_tokens = 0;
};

Result<CalibratedModel> quantize_with_calibration(const std::filesystem::path& model_dir,
                                                  const std::vector<int32_t>& calibration_tokens,
                                                  const PipelineOptions& options);

}  // namespace brisk::calib
