// The architecture hyper-parameters of a model, read from its config.json (never guessed from
// names or shapes).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/json_file.h"

namespace brisk {

enum class Architecture { Llama, GPT2 };  // Llama covers llama, mistral and qwen2
enum class RopeType { Default, Linear, Llama3 };

struct RopeConfig {
  double theta = 10000.0;
  RopeType type = RopeType::Default;
  double factor = 1.0;                       // linear and llama3
  double low_freq_factor = 1.0;              // llama3
  double high_freq_factor = 4.0;             // llama3
  int64_t original_max_position = 8192;      // llama3
};

struct ModelConfig {
  std::string model_type;  // as written in config.json
  Architecture arch = Architecture::Llama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position = 0;
  double norm_eps = 1e-5;
  RopeConfig rope;            // Llama family only
  bool tie_word_embeddings = false;
  bool qkv_bias = false;      // Qwen2 always; Llama with attention_bias
  bool o_bias = false;        // Llama with attention_bias
  bool mlp_bias = false;
  int64_t sliding_window = 0; // 0: none. Mistral's window; contexts are capped to it.
  std::vector<int32_t> bos_ids, eos_ids;
  Json quantization_config;   // as written (null: not quantized); formats/quantized_checkpoint.h reads it

  // Rotary inverse frequencies (head_dim/2 entries) with the configured scaling applied.
  std::vector<float> rope_inv_freq() const;
};

Result<ModelConfig> parse_model_config(const Json& json, const std::string& where);
Result<ModelConfig> load_model_config(const std::filesystem::path& config_json);

}  // namespace brisk
