#include "models/pipeline_stage.h"

#include <set>

#include "models/architecture.h"
#include "models/layer_subset.h"

namespace brisk {

LayerRange stage_layers(int64_t n_layers, PipelineStage stage) {
  const int64_t base = n_layers / stage.stages, longer = n_layers % stage.stages;
  const int64_t first = stage.stage * base + std::min(stage.stage, longer);
  return {first, first + base + (stage.stage < longer ? 1 : 0)};
}

bool stage_holds(PipelineStage stage, const ModelConfig& config, const TensorSpec& spec) {
  if (spec.layer != kNoLayer) return true;
  switch (spec.role) {
    case Role::TokenEmbed: return stage.first() || (stage.last() && config.tie_word_embeddings);
    case Role::PositionEmbed: return stage.first();
    case Role::FinalNorm:
    case Role::Head: return stage.last();
    default: return true;
  }
}

Status cut_pipeline_stage(ModelConfig& config, WeightStore& store, PipelineStage stage) {
  if (stage.stages <= 1) return ok_status();
  const std::string what = "--pp " + std::to_string(stage.stages) + ": ";
  if (stage.stage < 0 || stage.stage >= stage.stages)
    return make_error(what + "stage " + std::to_string(stage.stage) + " is outside the job");
  if (!config.arch->select_layers)
    return make_error(what + "model_type '" + config.model_type + "' does not run as pipeline stages yet");
  if (!config.low_rank.empty()) return make_error(what + "low-rank factored layers do not run as pipeline stages yet");
  if (config.n_layers < stage.stages)
    return make_error(what + "the model's " + std::to_string(config.n_layers) + " layers do not fill " +
                      std::to_string(stage.stages) + " stages");
  const LayerRange range = stage_layers(config.n_layers, stage);
  ModelConfig smaller = config;
  smaller.n_layers = range.end - range.first;
  config.arch->select_layers(smaller, range.first, range.end);
  std::vector<int64_t> new_index(size_t(config.n_layers), -1);
  for (int64_t l = range.first; l < range.end; ++l) new_index[size_t(l)] = l - range.first;
  BRISK_ASSIGN(kept, renamed_layer_tensors(config, smaller, new_index));
  std::set<std::string> declared;
  for (const TensorSpec& spec : config.arch->tensors(config)) {
    declared.insert(spec.name);
    if (spec.layer == kNoLayer && stage_holds(stage, config, spec)) kept[spec.name] = spec.name;
  }
  // Tensors the family does not declare stay as they are: binding names them (or ignores buffers).
  for (const auto& [name, stored] : store.all())
    if (!declared.count(name)) kept[name] = name;
  store.select(kept);
  config = std::move(smaller);
  return ok_status();
}

}  // namespace brisk
