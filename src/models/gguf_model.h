// A llama.cpp model file (.gguf) seen as a Hugging Face checkpoint: the architecture keys become
// a ModelConfig through the family's declaration, the tensors are renamed to the Hugging Face
// names of the same roles and brought to the Hugging Face layout (rotary rows un-interleaved
// where llama.cpp's converter interleaved them, Conv1D matrices back to [in, out], norms stored as
// 1 + w back to w), and quantized tensors are dequantized to fp32. The models then load them exactly as they load safetensors.
#pragma once

#include <filesystem>
#include <memory>

#include "formats/gguf.h"
#include "formats/weight_store.h"
#include "models/architecture.h"
#include "models/model_config.h"

namespace brisk {

struct GgufModel {
  ModelConfig config;
  WeightStore weights;
};

// The keys every llama.cpp architecture writes, read once for the families' gguf_config.
struct GgufCommon {
  Json json;  // model_type, vocab_size, bos/eos ids: config.json fields every family shares
  int64_t hidden = 0, ff = 0, layers = 0, heads = 0, kv_heads = 0, context = 0;
};
Result<GgufCommon> read_gguf_common(const GgufFile& file, const GgufArchitecture& arch);
// The inverse, for brisk export: the same keys from a config (head_count_kv for families with
// grouped keys).
void write_gguf_common(const ModelConfig& config, const GgufArchitecture& arch, GgufWriter& out);

// llama.cpp's tensor name for a spec: blk.<layer>.<role name>.<weight|bias>, or the model-level
// names (token_embd, output_norm, output, ...); `arch` may rename roles (GgufArchitecture::role_names).
std::string gguf_tensor_name(const TensorSpec& spec, const GgufArchitecture* arch = nullptr);

Result<ModelConfig> gguf_model_config(const GgufFile& file);
Result<WeightStore> gguf_weight_store(std::shared_ptr<const GgufFile> file, const ModelConfig& config);
Result<GgufModel> open_gguf_model(const std::filesystem::path& path);

}  // namespace brisk
