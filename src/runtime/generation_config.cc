#include "runtime/generation_config.h"

#include "core/mapped_file.h"
#include "formats/config_fields.h"

#include <cstdint>

namespace brisk {

namespace {

Result<std::optional<float>> ranged(const ConfigFields& f, const char* key, double lo, double hi) {
  BRISK_ASSIGN(value, f.optional_number(key));
  if (value && !(*value >= lo && *value <= hi))
    return f.error(key, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                            std::to_string(*value));
  return value ? std::optional<float>(float(*value)) : std::nullopt;
}

}  // namespace

Result<GenerationConfig> read_generation_config(const std::filesystem::path& model_dir) {
  GenerationConfig g;
  const std::filesystem::path path = model_dir / "generation_config.json";
  if (!is_directory_path(model_dir) || !path_exists(path)) return g;
  BRISK_ASSIGN(json, read_json_file(path));
  if (!json.is_object()) return make_error(path.string() + ": not a JSON object");
  const ConfigFields f(json, path.string());
  if (f.has("do_sample")) {
    BRISK_ASSIGN(sample, f.boolean_or("do_sample", true));
    g.do_sample = sample;
  }
  BRISK_ASSIGN(temperature, ranged(f, "temperature", 0.0, 100.0));
  BRISK_ASSIGN(top_p, ranged(f, "top_p", 0.0, 1.0));
  BRISK_ASSIGN(min_p, ranged(f, "min_p", 0.0, 1.0));
  BRISK_ASSIGN(repetition_penalty, ranged(f, "repetition_penalty", 1e-3, 100.0));
  g.temperature = temperature;
  g.top_p = top_p;
  g.min_p = min_p;
  g.repetition_penalty = repetition_penalty;
  if (f.has("top_k")) {
    const Json& top_k = json.at("top_k");
    if (!top_k.is_number_integer() || top_k.get<int64_t>() < 0 || top_k.get<int64_t>() > INT32_MAX)
      return f.error("top_k", "must be a non-negative integer, got " + json_excerpt(top_k));
    g.top_k = int32_t(top_k.get<int64_t>());
  }
  BRISK_ASSIGN(eos, f.token_ids("eos_token_id"));
  g.eos_ids = std::move(eos);
  return g;
}

SamplingParams GenerationConfig::apply(SamplingParams s) const {
  if (temperature) s.temperature = *temperature;
  if (top_k) s.top_k = *top_k;
  if (top_p) s.top_p = *top_p;
  if (min_p) s.min_p = *min_p;
  if (repetition_penalty) s.repetition_penalty = *repetition_penalty;
  if (do_sample && !*do_sample) s.temperature = 0.0f;
  return s;
}

std::string GenerationConfig::fields_set() const {
  std::string out;
  auto add = [&](bool set, const char* name) {
    if (set) out += (out.empty() ? "" : ", ") + std::string(name);
  };
  add(do_sample.has_value(), "do_sample");
  add(temperature.has_value(), "temperature");
  add(top_k.has_value(), "top_k");
  add(top_p.has_value(), "top_p");
  add(min_p.has_value(), "min_p");
  add(repetition_penalty.has_value(), "repetition_penalty");
  return out;
}

}  // namespace brisk
