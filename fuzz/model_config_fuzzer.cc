// Why: config.json is untrusted input whose every field the loaders read with a type and range
// check (formats/config_fields.h): the architecture's declaration reads its fields, then
// quantization_config says how each module was quantized. Past bugs: fields of the wrong JSON
// type ("symmetric": null, "format": 0) threw out of nlohmann's getters.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "formats/json_file.h"
#include "formats/quantized_checkpoint.h"
#include "models/model_config.h"

namespace {

// Module names a quantization_config's targets are matched against ("re:" regexes, exact names,
// the class "Linear").
constexpr const char* kModules[] = {"model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj", "lm_head"};
// The contexts rope frequencies are computed for: a short one and one past most
// original_max_position_embeddings (LongRoPE switches factors there).
constexpr int64_t kContexts[] = {16, 1 << 17};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto json = brisk::parse_json(text, "config.json");
  if (!json.ok()) return 0;
  auto config = brisk::parse_model_config(json.value(), "config.json");
  if (!config.ok()) return 0;
  for (const int64_t context : kContexts) (void)config.value().rope_inv_freq(context);
  if (config.value().quantization_config.is_null()) return 0;
  auto groups = brisk::parse_quantization_config(config.value().quantization_config, "config.json");
  if (!groups.ok()) return 0;
  for (const char* module : kModules) (void)brisk::group_for(groups.value(), module);
  return 0;
}
