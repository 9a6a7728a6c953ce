// A model brisk loads written as an ONNX decoder for onnxruntime, with the input and output names
// Hugging Face Optimum's decoders use (a "merged" decoder with past; transformers.js also wants the
// file under onnx/, which this does not do yet): inputs input_ids, attention_mask,
// position_ids, past_key_values.{i}.key/value [batch, kv_heads, past, head_dim]; outputs logits
// and present.{i}.key/value. Beside model.onnx: config.json, generation_config.json and the
// tokenizer files of the source folder.
//
// This first version writes fp32 graphs of the Llama family without sliding windows (llama,
// qwen2, mistral, Llama 3 rope scaling included: the rotary tables are precomputed); other
// families, windows and the int8 / int4 forms are refused by name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/error.h"

namespace brisk {

struct OnnxExportOptions {
  int64_t opset = 17;
  // Positions the rotary tables cover (default: the model's max_position_embeddings).
  int64_t max_positions = 0;
  // Initializers of this many bytes or more go to model.onnx_data when the weights pass 2 GB.
  uint64_t external_threshold = uint64_t(1) << 10;
};

struct OnnxExportReport {
  std::string model_type;
  int64_t layers = 0, parameters = 0, nodes = 0;
  bool external_data = false;
  uint64_t bytes = 0;  // model.onnx (+ model.onnx_data)
};

// Writes the folder `out` (which must not exist or be empty).
Result<OnnxExportReport> export_onnx(const std::filesystem::path& model, const std::filesystem::path& out,
                                     const OnnxExportOptions& options);

}  // namespace brisk
