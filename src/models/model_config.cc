#include "models/model_config.h"

#include <cmath>
#include <set>

#include "models/architecture.h"

namespace brisk {

namespace {

// LongRoPE: factors of head_dim / 2 entries each; original_max_position_embeddings in the
// rope object or at the top level (Phi-3's config); attention_factor as transformers derives it
// when absent: sqrt(1 + ln(max / original) / ln(original)) when the context is extended.
Status parse_longrope(const Json& json, const ConfigFields& f, RopeConfig& rope) {
  BRISK_ASSIGN(short_factor, f.numbers("short_factor"));
  BRISK_ASSIGN(long_factor, f.numbers("long_factor"));
  if (short_factor.size() != long_factor.size())
    return f.error("long_factor", "has " + std::to_string(long_factor.size()) + " entries, short_factor " +
                                      std::to_string(short_factor.size()));
  const ConfigFields top(json, f.where());
  BRISK_ASSIGN(top_original, top.integer_or("original_max_position_embeddings", 0));
  BRISK_ASSIGN(original, f.integer_or("original_max_position_embeddings", top_original));
  if (original <= 0) return f.error("original_max_position_embeddings", "is required for longrope");
  BRISK_ASSIGN(max_position, top.integer_or("max_position_embeddings", original));
  BRISK_ASSIGN(given_attention_factor, f.optional_number("attention_factor"));
  const double factor = double(max_position) / double(original);
  rope.short_factor = short_factor;
  rope.long_factor = long_factor;
  rope.original_max_position = original;
  rope.factor = factor;
  rope.attention_factor = given_attention_factor.value_or(
      factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(factor) / std::log(double(original))));
  return ok_status();
}

}  // namespace

Result<RopeConfig> parse_rope(const Json& json, const std::string& where) {
  RopeConfig rope;
  BRISK_ASSIGN(top_theta, ConfigFields(json, where).number_or("rope_theta", 10000.0));
  rope.theta = top_theta;
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) continue;
    const std::string at = where + ": '" + key + "'";
    if (!it->is_object()) return make_error(at + " must be an object");
    ConfigFields f(*it, at);
    BRISK_ASSIGN(theta, f.number_or("rope_theta", rope.theta));
    rope.theta = theta;
    BRISK_ASSIGN(old_type, f.string_or("type", "default"));
    BRISK_ASSIGN(type, f.string_or("rope_type", old_type));
    if (type == "default") {
      rope.type = RopeType::Default;
    } else if (type == "linear") {
      rope.type = RopeType::Linear;
    } else if (type == "llama3") {
      rope.type = RopeType::Llama3;
    } else if (type == "longrope" || type == "su") {
      rope.type = RopeType::LongRope;
    } else {
      return make_error(at + ": unsupported rope type '" + type + "' (supported: default, linear, llama3, longrope)");
    }
    if (rope.type == RopeType::LongRope) {
      BRISK_TRY(parse_longrope(json, f, rope));
    } else if (rope.type != RopeType::Default) {
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

Result<int64_t> bounded_size(const ConfigFields& fields, const char* key, int64_t limit) {
  BRISK_ASSIGN(value, fields.integer(key));
  if (value > limit)
    return fields.error(key, "= " + std::to_string(value) + " exceeds brisk's limit of " + std::to_string(limit) +
                                 " (corrupt config?)");
  return value;
}

namespace {

Status check_size_limits(const ModelConfig& c, const std::string& where) {
  const struct {
    const char* what;
    int64_t value, limit;
  } sizes[] = {
      {"the layer count (num_hidden_layers / n_layer)", c.n_layers, kMaxLayers},
      {"hidden_size (n_embd)", c.hidden_size, kMaxWidth},
      {"intermediate_size (n_inner)", c.intermediate_size, kMaxWidth},
      {"num_attention_heads (n_head)", c.n_heads, kMaxWidth},
      {"num_key_value_heads", c.n_kv_heads, kMaxWidth},
      {"head_dim", c.head_dim, kMaxWidth},
      {"vocab_size", c.vocab_size, kMaxVocab},
      {"max_position_embeddings (n_positions)", c.max_position, kMaxPositions},
  };
  for (const auto& s : sizes) {
    if (s.value > s.limit)
      return make_error(where + ": " + s.what + " = " + std::to_string(s.value) +
                        " exceeds brisk's limit of " + std::to_string(s.limit) + " (corrupt config?)");
  }
  return ok_status();
}

// "brisk_low_rank": {"method": "svd-llm", "ranks": {"<module>": rank, ...}}, as brisk lowrank
// writes it: which linear layers are stored as two factors (tensor_spec.h, Factor).
Result<LowRankRanks> parse_low_rank(const Json& json, const std::string& where) {
  LowRankRanks ranks;
  const auto section = json.find("brisk_low_rank");
  if (section == json.end() || section->is_null()) return ranks;
  const auto r = section->is_object() ? section->find("ranks") : section->end();
  if (r == section->end() || !r->is_object() || r->empty())
    return make_error(where + ": 'brisk_low_rank' must be an object with a non-empty object 'ranks' (module -> rank)");
  for (auto it = r->begin(); it != r->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 1 || it.value().get<int64_t>() > kMaxWidth)
      return make_error(where + ": brisk_low_rank.ranks['" + it.key() + "'] must be an integer in [1, " +
                        std::to_string(kMaxWidth) + "]");
    ranks[it.key()] = it.value().get<int64_t>();
  }
  return ranks;
}

// Every module the ranks name is a linear layer of the model (a stale or misspelled one would
// otherwise be ignored and its factors reported as unexpected tensors).
Status check_low_rank_modules(const ModelConfig& c, const std::string& where) {
  if (c.low_rank.empty()) return ok_status();
  std::set<std::string> factored;
  for (const TensorSpec& spec : c.arch->tensors(c))
    if (spec.factor == Factor::Output && spec.part == Part::Weight) factored.insert(spec.module);
  for (const auto& [module, rank] : c.low_rank)
    if (!factored.count(factor_module(module, Factor::Output)))
      return make_error(where + ": brisk_low_rank.ranks names '" + module + "', which is not a linear layer of this " +
                        c.model_type + " model");
  return ok_status();
}

}  // namespace

Result<ModelConfig> parse_model_config(const Json& json, const std::string& where) {
  if (!json.is_object()) return make_error(where + ": not a JSON object");
  auto mt = json.find("model_type");
  if (mt == json.end() || !mt->is_string()) return make_error(where + ": missing field 'model_type'");
  ModelConfig c;
  c.model_type = mt->get<std::string>();
  const ConfigFields fields(json, where);
  BRISK_ASSIGN(bos, fields.token_ids("bos_token_id"));
  BRISK_ASSIGN(eos, fields.token_ids("eos_token_id"));
  c.bos_ids = std::move(bos);
  c.eos_ids = std::move(eos);
  if (auto q = json.find("quantization_config"); q != json.end() && !q->is_null()) c.quantization_config = *q;
  BRISK_ASSIGN(low_rank, parse_low_rank(json, where));
  c.low_rank = std::move(low_rank);
  if (auto kv = json.find("brisk_kv_dtype"); kv != json.end()) {
    const std::optional<KvDtype> parsed = kv->is_string() ? kv_dtype_from_name(kv->get<std::string>()) : std::nullopt;
    if (!parsed)
      return make_error(where + ": 'brisk_kv_dtype' must be one of \"f32\", \"bf16\", \"int8\", \"fp8\" (got " +
                        json_excerpt(*kv) + ")");
    c.kv_dtype = parsed;
  }
  const Architecture* arch = find_architecture(c.model_type);
  if (!arch)
    return make_error(where + ": unknown model_type '" + c.model_type + "' (supported: " + known_model_types() + ")");
  c.arch = arch;
  BRISK_ASSIGN(parsed, arch->parse_config(ConfigFields(json, where), std::move(c)));
  parsed.arch = arch;
  BRISK_TRY(check_size_limits(parsed, where));
  BRISK_TRY(check_low_rank_modules(parsed, where));
  return parsed;
}

Result<ModelConfig> load_model_config(const std::filesystem::path& config_json) {
  BRISK_ASSIGN(json, read_json_file(config_json));
  return parse_model_config(json, config_json.string());
}

std::vector<float> ModelConfig::rope_inv_freq(int64_t context) const {
  return brisk::rope_inv_freq(rope, head_dim, context);
}

std::vector<float> rope_inv_freq(const RopeConfig& rope, int64_t head_dim, int64_t context) {
  const int64_t half = head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  const std::vector<double>& longrope = context > rope.original_max_position ? rope.long_factor : rope.short_factor;
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(rope.theta, double(2 * i) / double(head_dim));
    if (rope.type == RopeType::LongRope) f /= longrope[size_t(i)];
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
