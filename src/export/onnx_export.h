// A model brisk loads written as an ONNX graph for onnxruntime. Decoders take the input and output
// names Hugging Face Optimum's decoders use (a "merged" decoder with past, as transformers.js
// loads it too): inputs input_ids, attention_mask, position_ids,
// past_key_values.{i}.key/value [batch, kv_heads, past, head_dim]; outputs logits and
// present.{i}.key/value. The folder: onnx/model<suffix>.onnx (suffix by the weights' form, as
// transformers.js names its files: none for fp32, _fp16, _quantized for int8, _q4 for int4),
// config.json, generation_config.json and the tokenizer files of the source folder.
//
// This version writes decoders of the Llama family without sliding windows (llama, qwen2,
// mistral, Llama 3 rope scaling included: the rotary tables are precomputed) and GPT-2, and BERT
// encoders (export/onnx_encoder.h), matrices as fp32, fp16, int8 (QDQ) or int4 (MatMulNBits) --
// export/onnx_matrices.h; other families and windows are refused by name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "core/error.h"
#include "export/onnx_matrices.h"

namespace brisk {

struct OnnxExportOptions {
  int64_t opset = 17;
  OnnxMatrixType matrix_type = OnnxMatrixType::Auto;
  int64_t int4_group = 128;  // for float matrices exported as int4
  // Positions the rotary tables cover (default: the model's max_position_embeddings).
  int64_t max_positions = 0;
  // Initializers of this many bytes or more go to <file>_data when the weights pass 2 GB.
  uint64_t external_threshold = uint64_t(1) << 10;
};

struct OnnxExportReport {
  std::string model_type;
  std::string file;  // the graph, relative to the folder: "onnx/model_q4.onnx"
  int64_t layers = 0, parameters = 0;
  bool external_data = false;
  uint64_t bytes = 0;  // the graph file (+ its _data file)
  std::map<std::string, int64_t> matrices_by_type;  // {"int4": 28, "fp32": 1}
};

// Writes the folder `out` (which must not exist or be empty).
Result<OnnxExportReport> export_onnx(const std::filesystem::path& model, const std::filesystem::path& out,
                                     const OnnxExportOptions& options);

}  // namespace brisk
