// Pipeline parallelism's split of one model over stages (issue 23): stage s of S holds a
// contiguous run of layers and only their weights and KV cache; the first stage also holds the
// input embeddings, the last the final norm and the output head. A stage's model is an ordinary
// model of a config with its layers only (renumbered from 0), whose pass takes the residual stream
// from the previous stage instead of embedding tokens and hands it to the next instead of
// producing logits (Model::receive_stage_input / send_stage_output); the last stage returns the
// logits to the first, which owns the sampler.
#pragma once

#include <cstdint>

#include "formats/weight_store.h"
#include "models/model_config.h"

namespace brisk {

struct PipelineStage {
  int64_t stage = 0;
  int64_t stages = 1;  // 1: no pipeline
  bool first() const { return stage == 0; }
  bool last() const { return stage + 1 == stages; }
};

struct LayerRange {
  int64_t first = 0, end = 0;  // [first, end)
};
// The layers stage `stage` holds of n_layers: contiguous runs whose lengths differ by at most one,
// the earlier stages the longer.
LayerRange stage_layers(int64_t n_layers, PipelineStage stage);

// Whether a stage of `config`'s model keeps a model-level tensor: the input embeddings on the
// first stage, the final norm and the head on the last (with a tied head, the embedding table
// there too). Per-layer tensors: always (a stage's config lists only its own layers).
bool stage_holds(PipelineStage stage, const ModelConfig& config, const TensorSpec& spec);

// Turns `config` into the stage's (its layers only) and `store` into the tensors the stage holds,
// renamed to the smaller config's names. Errors: a family that does not run as stages, more stages
// than layers. Nothing happens with one stage.
Status cut_pipeline_stage(ModelConfig& config, WeightStore& store, PipelineStage stage);

}  // namespace brisk
