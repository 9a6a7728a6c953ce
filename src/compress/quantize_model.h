// brisk quantize: a Hugging Face model folder in, a quantized model folder out (model.safetensors
// in a compressed-tensors layout, config.json with "quantization_config", tokenizer files copied).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compress/quantize.h"
#include "formats/quantized_checkpoint.h"

namespace brisk {

// How the output head (lm_head, when not tied to the embeddings) is stored. Auto: never below 8
// bits -- the body's scheme when it has 8 bits (w8, w8a8, fp8), else w8 (llama.cpp likewise keeps
// its output matrix at 6-8 bits under 4-bit types); the head is a large share of a small model's
// bytes and its errors reach every logit directly. Keep: its original dtype. Same: the body's
// scheme. W8: int8 per channel.
enum class HeadPolicy { Auto, Keep, Same, W8 };
Result<HeadPolicy> parse_head_policy(std::string_view name);  // "auto", "keep", "same", "w8"
// The scheme the head gets under `policy` with the body quantized by `body`, or none (Keep).
std::optional<QuantSpec> head_spec(HeadPolicy policy, const QuantSpec& body);

// What a calibrated method decided (compress/calibrated_quantize.h): tensors whose values it
// changed (folded norms and producer rows; matrices as [out, in]) and matrices whose codes it
// chose. Anything not listed is taken from the input checkpoint, RTN for matrices.
struct MethodOverrides {
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, QuantizedMatrix> matrices;
};

// How a spec's matrices are stored on disk (formats/quantized_checkpoint.h).
QuantizedLayout layout_of(const QuantSpec& spec);

// A format per module (brisk optimize's mixed recipes): module ("model.layers.0.mlp.up_proj") ->
// its spec, or nullopt to keep the module in its stored dtype.
using ModuleRecipe = std::map<std::string, std::optional<QuantSpec>>;

struct QuantizeModelOptions {
  std::filesystem::path in, out;
  QuantSpec spec;
  HeadPolicy head = HeadPolicy::Auto;
  // Modules the recipe names take its choice; the others `spec` (the head: `head`).
  const ModuleRecipe* recipe = nullptr;
  const MethodOverrides* overrides = nullptr;
  // Rewrites a matrix's fp32 values [out, in] before RTN (brisk optimize prunes the modules its
  // recipe prunes here, one matrix at a time); not called for matrices the overrides give.
  std::function<Status(const std::string& tensor, std::vector<float>& w, int64_t rows, int64_t cols)> before_quantize;
  // fp32 tensors it does not quantize are stored in this float dtype (QAT writes its trained fp32
  // copies back in the source model's dtype); nullopt: as stored.
  std::optional<DType> kept_dtype;
  int threads = 0;  // CPU threads for RTN (0: all cores)
};

struct QuantizeModelReport {
  int64_t quantized = 0;              // matrices quantized
  std::vector<std::string> kept;      // matrices left in their dtype (the head under Keep)
  std::string head_scheme;            // the head's scheme ("" when kept, tied or absent)
  uint64_t bytes_in = 0, bytes_out = 0;  // model.safetensors payload before / after
  double seconds = 0;
};

// progress(matrices done, matrices total)
Result<QuantizeModelReport> quantize_model(const QuantizeModelOptions& options,
                                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace brisk
