// A model brisk loads (a Hugging Face folder, quantized or pruned ones included, or a .gguf file)
// written as a llama.cpp GGUF file: the inverse of models/gguf_model.h. Tensor names come from the
// same role table (gguf_tensor_name), layouts are put back the way llama.cpp's converter writes
// them (llama's Q/K rows interleaved per rotary pair, GPT-2's Conv1D matrices as [out, in]), the
// family's declaration writes its "<arch>.*" keys (Architecture::gguf_metadata) and the tokenizer
// goes in as tokenizer.ggml.* (tokenizer/gguf_vocab_writer.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/gguf_quants.h"

namespace brisk {

struct GgufExportOptions {
  // The type of every matrix (embedding and head included); nullopt: each matrix the nearest to
  // its own stored dtype (nearest_gguf_type). Vectors (norms, biases) stay F32, as llama.cpp keeps them.
  // A matrix whose rows do not hold whole blocks of the type falls back to the nearest type with
  // smaller blocks (Q4_K -> Q4_0, Q6_K -> Q8_0, then F16); the report lists each.
  std::optional<GgmlType> matrix_type;
  std::optional<std::string> chat_template;  // stored as tokenizer.chat_template
};

struct GgufExportReport {
  std::string architecture;  // general.architecture
  std::string tokenizer;     // tokenizer.ggml.model ("" without a vocabulary)
  std::string pre_tokenizer;
  std::string source_format;  // what the source's matrices are stored as: "BF16 x42"
  std::string matrix_type;    // the type asked for ("Q4_K"), or "auto (Q4_K)" naming the layers' type
  std::map<std::string, int64_t> tensors_by_type;  // "Q4_K" -> count
  std::map<std::string, std::vector<std::string>> fallbacks;  // "Q4_0" -> matrices that fell back to it
  int64_t parameters = 0;
  uint64_t bytes = 0;  // the file's size
};

// The GGUF type nearest a stored dtype: plain floats as they are, brisk's 8-bit formats (w8,
// w8a8, fp8) Q8_0, its 4-bit ones (w4 with a zero point per 128 values, nf4, log4) Q4_K (4-bit
// codes with a scale and a min per 32 values).
GgmlType nearest_gguf_type(DType stored);

// The ggml type a --dtype name selects: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k.
Result<GgmlType> parse_gguf_export_type(const std::string& name);
std::string gguf_export_type_names();  // "f32, f16, ..." for help and errors

// Writes `out` (a .gguf path; refused if it exists). progress(tensors done, tensors).
Result<GgufExportReport> export_gguf(const std::filesystem::path& model, const std::filesystem::path& out,
                                     const GgufExportOptions& options,
                                     const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace brisk
