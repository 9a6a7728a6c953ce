// The architecture hyper-parameters of a model, read from its config.json (never guessed from
// names or shapes). The fields every family shares live here; each family's own settings are
// parsed by its declaration (models/<family>.cc) into `family`.
#pragma once

#include <any>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/kv_dtype.h"
#include "formats/config_fields.h"
#include "formats/json_file.h"
#include "models/tensor_spec.h"

namespace brisk {

struct Architecture;

enum class RopeType { Default, Linear, Llama3, LongRope };

struct RopeConfig {
  double theta = 10000.0;
  RopeType type = RopeType::Default;
  double factor = 1.0;                       // linear and llama3
  double low_freq_factor = 1.0;              // llama3
  double high_freq_factor = 4.0;             // llama3
  int64_t original_max_position = 8192;      // llama3, longrope
  // LongRoPE (Phi-3 "su"): per-frequency divisors for contexts up to / beyond the original length,
  // and the magnitude correction applied to cos and sin.
  std::vector<double> short_factor, long_factor;
  double attention_factor = 1.0;
};

// The MLP's activation: SwiGLU's silu, or GELU in its exact (erf) or tanh form ("gelu_new",
// "gelu_pytorch_tanh"). Each family's config parser sets it; kernels and exporters read it.
enum class Activation : uint8_t { Silu, GeluErf, GeluTanh };

struct ModelConfig {
  std::string model_type;             // as written in config.json
  const Architecture* arch = nullptr; // the declaration that accepted model_type
  int64_t vocab_size = 0;
  // The rows of the token embedding and head this instance holds: [vocab_begin, vocab_begin +
  // vocab_rows()) of the vocabulary. All of it, except on a tensor-parallel rank
  // (models/tensor_parallel.h), whose logits the ranks then assemble to vocab_size columns.
  int64_t vocab_begin = 0;
  int64_t vocab_shard = 0;  // 0: the whole vocabulary
  int64_t vocab_rows() const { return vocab_shard > 0 ? vocab_shard : vocab_size; }
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position = 0;
  double norm_eps = 1e-5;
  Activation activation = Activation::Silu;  // the MLP's, from hidden_act / activation_function
  RopeConfig rope;            // rotary families
  bool tie_word_embeddings = false;
  bool qkv_bias = false;      // Qwen2 always; Llama with attention_bias
  bool o_bias = false;        // Llama with attention_bias
  bool mlp_bias = false;
  std::vector<int32_t> bos_ids, eos_ids;
  Json quantization_config;   // as written (null: not quantized); formats/quantized_checkpoint.h reads it
  LowRankRanks low_rank;      // factored linear layers (config.json's "brisk_low_rank"; brisk lowrank)
  // The KV cache type the model runs with unless a run asks for another (config.json's
  // "brisk_kv_dtype", written by brisk optimize --space kv); nullopt: f32.
  std::optional<KvDtype> kv_dtype;
  std::any family;            // the family's own settings (its declaration parses and reads them)

  // Rotary inverse frequencies (head_dim/2 entries) with the configured scaling applied, for a
  // model instance running up to `context` positions (LongRoPE picks its factors by it, as
  // llama.cpp does, so a sequence's cached keys never change factors midway).
  std::vector<float> rope_inv_freq(int64_t context) const;
};

// Rotary inverse frequencies (head_dim/2 entries) of one rope configuration; see
// ModelConfig::rope_inv_freq.
std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim, int64_t context);

// rope_theta and scaling at the top level (older checkpoints), in "rope_scaling", or in
// "rope_parameters" (transformers >= 5).
Result<RopeConfig> parse_rope(const Json& json, const std::string& where);

// Sizes past these are corrupt, not large (the biggest released models stay an order of
// magnitude below): larger ones would overflow size arithmetic or fail to allocate activations,
// which happens before the checkpoint's shapes are compared with the config. parse_model_config
// checks every size against them once the family has read its fields.
inline constexpr int64_t kMaxLayers = 1024;
inline constexpr int64_t kMaxWidth = int64_t(1) << 20;  // hidden, intermediate, head_dim, heads
inline constexpr int64_t kMaxVocab = int64_t(1) << 22;
inline constexpr int64_t kMaxPositions = int64_t(1) << 24;

// A required positive size at most `limit`, for the sizes a family loops over or multiplies while
// it reads the config (a layer count of 2^52 allocated per-layer settings before the check).
Result<int64_t> bounded_size(const ConfigFields& fields, const char* key, int64_t limit);

// Finds the declaration for config.json's model_type (an unknown one is an error listing the
// known ones) and lets it read the rest.
Result<ModelConfig> parse_model_config(const Json& json, const std::string& where);
Result<ModelConfig> load_model_config(const std::filesystem::path& config_json);

}  // namespace brisk
