// A llama.cpp model file (.gguf) seen as a Hugging Face checkpoint: the architecture keys become
// a ModelConfig, the tensors are renamed to Hugging Face names and brought to the Hugging Face
// layout (Q/K rows un-permuted for llama, GPT-2 matrices back to Conv1D [in, out]), and quantized
// tensors are dequantized to fp32. The models then load them exactly as they load safetensors.
#pragma once

#include <filesystem>
#include <memory>

#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/weight_store.h"

namespace brisk {

struct GgufModel {
  ModelConfig config;
  WeightStore weights;
};

// general.architecture llama, qwen2 or gpt2.
Result<ModelConfig> gguf_model_config(const GgufFile& file);
Result<WeightStore> gguf_weight_store(std::shared_ptr<const GgufFile> file, const ModelConfig& config);
Result<GgufModel> open_gguf_model(const std::filesystem::path& path);

}  // namespace brisk
