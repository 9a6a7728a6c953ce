#include "formats/model_config.h"

#include <cmath>

namespace brisk {

namespace {

// Reads typed fields with errors that name the file and the field.
class Fields {
 public:
  Fields(const Json& json, std::string where) : json_(json), where_(std::move(where)) {}

  Result<int64_t> integer(const char* key) const {
    auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return make_error(where_ + ": missing field '" + key + "'");
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return make_error(where_ + ": field '" + key + "' must be a positive integer, got " + it->dump());
    return it->get<int64_t>();
  }
  Result<int64_t> integer_or(const char* key, int64_t fallback) const {
    auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return fallback;
    return integer(key);
  }
  Result<double> number_or(const char* key, double fallback) const {
    auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return fallback;
    if (!it->is_number()) return make_error(where_ + ": field '" + key + "' must be a number, got " + it->dump());
    return it->get<double>();
  }
  Result<bool> boolean_or(const char* key, bool fallback) const {
    auto it = json_.find(key);
    if (it == json_.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) return make_error(where_ + ": field '" + key + "' must be true or false, got " + it->dump());
    return it->get<bool>();
  }
  std::string string_or(const char* key, const std::string& fallback) const {
    auto it = json_.find(key);
    return it != json_.end() && it->is_string() ? it->get<std::string>() : fallback;
  }

 private:
  const Json& json_;
  std::string where_;
};

std::vector<int32_t> token_ids(const Json& json, const char* key) {
  std::vector<int32_t> ids;
  auto it = json.find(key);
  if (it == json.end()) return ids;
  if (it->is_number_integer()) ids.push_back(it->get<int32_t>());
  if (it->is_array())
    for (const auto& v : *it)
      if (v.is_number_integer()) ids.push_back(v.get<int32_t>());
  return ids;
}

// rope_theta and scaling live at the top level (older checkpoints), in "rope_scaling", or in
// "rope_parameters" (transformers >= 5).
Result<RopeConfig> parse_rope(const Json& json, const std::string& where) {
  RopeConfig rope;
  BRISK_ASSIGN(top_theta, Fields(json, where).number_or("rope_theta", 10000.0));
  rope.theta = top_theta;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) continue;
    const std::string at = where + ": '" + key + "'";
    if (!it->is_object()) return make_error(at + " must be an object");
    Fields f(*it, at);
    BRISK_ASSIGN(theta, f.number_or("rope_theta", rope.theta));
    rope.theta = theta;
    std::string type = f.string_or("rope_type", f.string_or("type", "default"));
    if (type == "default") {
      rope.type = RopeType::Default;
    } else if (type == "linear") {
      rope.type = RopeType::Linear;
    } else if (type == "llama3") {
      rope.type = RopeType::Llama3;
    } else {
      return make_error(at + ": unsupported rope type '" + type + "' (supported: default, linear, llama3)");
    }
    if (rope.type != RopeType::Default) {
      BRISK_ASSIGN(factor, f.number_or("factor", 0.0));
      if (!(factor > 0)) return make_error(at + ": rope type '" + type + "' needs a positive 'factor'");
      rope.factor = factor;
    }
    if (rope.type == RopeType::Llama3) {
      BRISK_ASSIGN(low, f.number_or("low_freq_factor", 1.0));
      BRISK_ASSIGN(high, f.number_or("high_freq_factor", 4.0));
      BRISK_ASSIGN(orig, f.integer("original_max_position_embeddings"));
      if (!(high > low)) return make_error(at + ": high_freq_factor must exceed low_freq_factor");
      rope.low_freq_factor = low;
      rope.high_freq_factor = high;
      rope.original_max_position = orig;
    }
  }
  if (!(rope.theta > 0)) return make_error(where + ": rope_theta must be positive");
  return rope;
}

Result<ModelConfig> parse_llama(const Json& json, const std::string& where, ModelConfig c) {
  Fields f(json, where);
  BRISK_ASSIGN(vocab, f.integer("vocab_size"));
  BRISK_ASSIGN(hidden, f.integer("hidden_size"));
  BRISK_ASSIGN(inter, f.integer("intermediate_size"));
  BRISK_ASSIGN(layers, f.integer("num_hidden_layers"));
  BRISK_ASSIGN(heads, f.integer("num_attention_heads"));
  BRISK_ASSIGN(kv_heads, f.integer_or("num_key_value_heads", heads));
  BRISK_ASSIGN(max_pos, f.integer_or("max_position_embeddings", 2048));
  BRISK_ASSIGN(eps, f.number_or("rms_norm_eps", 1e-6));
  BRISK_ASSIGN(tie, f.boolean_or("tie_word_embeddings", false));
  BRISK_ASSIGN(attn_bias, f.boolean_or("attention_bias", false));
  BRISK_ASSIGN(mlp_bias, f.boolean_or("mlp_bias", false));
  BRISK_ASSIGN(rope, parse_rope(json, where));
  if (hidden % heads != 0 && !json.contains("head_dim"))
    return make_error(where + ": hidden_size " + std::to_string(hidden) + " is not divisible by num_attention_heads " + std::to_string(heads) + " and no head_dim is given");
  BRISK_ASSIGN(head_dim, f.integer_or("head_dim", hidden / heads));
  if (heads % kv_heads != 0)
    return make_error(where + ": num_attention_heads " + std::to_string(heads) + " is not a multiple of num_key_value_heads " + std::to_string(kv_heads));
  if (head_dim % 2 != 0) return make_error(where + ": head_dim must be even for rotary embeddings");
  std::string act = f.string_or("hidden_act", "silu");
  if (act != "silu" && act != "swish")
    return make_error(where + ": unsupported hidden_act '" + act + "' (llama family supports silu)");

  c.arch = Architecture::Llama;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position = max_pos;
  c.norm_eps = eps;
  c.rope = rope;
  c.tie_word_embeddings = tie;
  c.qkv_bias = attn_bias || c.model_type == "qwen2";
  c.o_bias = attn_bias && c.model_type != "qwen2";
  c.mlp_bias = mlp_bias && c.model_type == "llama";
  // Mistral's sliding window only matters beyond it: brisk caps contexts at the window instead
  // of silently attending too far. Qwen2 has a window only when use_sliding_window is true.
  BRISK_ASSIGN(use_window, f.boolean_or("use_sliding_window", c.model_type == "mistral"));
  if (use_window) {
    BRISK_ASSIGN(window, f.integer_or("sliding_window", 0));
    c.sliding_window = window;
  }
  return c;
}

Result<ModelConfig> parse_gpt2(const Json& json, const std::string& where, ModelConfig c) {
  Fields f(json, where);
  BRISK_ASSIGN(vocab, f.integer("vocab_size"));
  BRISK_ASSIGN(hidden, f.integer("n_embd"));
  BRISK_ASSIGN(layers, f.integer("n_layer"));
  BRISK_ASSIGN(heads, f.integer("n_head"));
  BRISK_ASSIGN(max_pos, f.integer_or("n_positions", 1024));
  BRISK_ASSIGN(inner, f.integer_or("n_inner", 4 * hidden));
  BRISK_ASSIGN(eps, f.number_or("layer_norm_epsilon", 1e-5));
  BRISK_ASSIGN(tie, f.boolean_or("tie_word_embeddings", true));
  BRISK_ASSIGN(by_layer, f.boolean_or("scale_attn_by_inverse_layer_idx", false));
  BRISK_ASSIGN(scale_weights, f.boolean_or("scale_attn_weights", true));
  if (by_layer || !scale_weights)
    return make_error(where + ": GPT-2 attention scaling variants (scale_attn_by_inverse_layer_idx, scale_attn_weights=false) are not supported");
  if (hidden % heads != 0) return make_error(where + ": n_embd is not divisible by n_head");
  std::string act = f.string_or("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    return make_error(where + ": unsupported activation_function '" + act + "' (supported: gelu_new)");
  if (!tie) return make_error(where + ": GPT-2 with untied lm_head is not supported");
  c.arch = Architecture::GPT2;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inner;
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = heads;
  c.head_dim = hidden / heads;
  c.max_position = max_pos;
  c.norm_eps = eps;
  c.tie_word_embeddings = true;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  return c;
}

}  // namespace

Result<ModelConfig> parse_model_config(const Json& json, const std::string& where) {
  if (!json.is_object()) return make_error(where + ": not a JSON object");
  auto mt = json.find("model_type");
  if (mt == json.end() || !mt->is_string()) return make_error(where + ": missing field 'model_type'");
  ModelConfig c;
  c.model_type = mt->get<std::string>();
  c.bos_ids = token_ids(json, "bos_token_id");
  c.eos_ids = token_ids(json, "eos_token_id");
  if (auto q = json.find("quantization_config"); q != json.end() && !q->is_null()) c.quantization_config = *q;
  if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2")
    return parse_llama(json, where, std::move(c));
  if (c.model_type == "gpt2") return parse_gpt2(json, where, std::move(c));
  return make_error(where + ": unknown model_type '" + c.model_type + "' (supported: llama, mistral, qwen2, gpt2)");
}

Result<ModelConfig> load_model_config(const std::filesystem::path& config_json) {
  BRISK_ASSIGN(json, read_json_file(config_json));
  return parse_model_config(json, config_json.string());
}

std::vector<float> ModelConfig::rope_inv_freq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(rope.theta, double(2 * i) / double(head_dim));
    if (rope.type == RopeType::Linear) f /= rope.factor;
    if (rope.type == RopeType::Llama3) {
      // Long wavelengths are slowed by `factor`, short ones kept, the band between blended
      // (Llama 3.1's published scheme, as transformers' _compute_llama3_parameters applies it).
      const double pi = 3.14159265358979323846;
      double wavelen = 2 * pi / f;
      double low_wavelen = double(rope.original_max_position) / rope.low_freq_factor;
      double high_wavelen = double(rope.original_max_position) / rope.high_freq_factor;
      if (wavelen > low_wavelen) {
        f /= rope.factor;
      } else if (wavelen >= high_wavelen) {
        double smooth = (double(rope.original_max_position) / wavelen - rope.low_freq_factor) /
                        (rope.high_freq_factor - rope.low_freq_factor);
        f = (1 - smooth) * f / rope.factor + smooth * f;
      }
    }
    inv[size_t(i)] = float(f);
  }
  return inv;
}

}  // namespace brisk
