// Rotary embedding tables: cos and sin of position * inverse frequency for every position a
// model instance supports, [positions, head_dim / 2] each, in backend memory.
#pragma once

#include <vector>

#include "models/model_config.h"
#include "ops/backend.h"

namespace brisk {

class RopeTables {
 public:
  RopeTables() = default;
  // The config's frequencies for `positions` positions; its attention_factor multiplies both
  // tables (LongRoPE's magnitude correction; 1 elsewhere).
  RopeTables(Backend& backend, const ModelConfig& config, int64_t positions)
      : RopeTables(backend, config.rope, config.head_dim, positions) {}
  RopeTables(Backend& backend, const RopeConfig& rope, int64_t head_dim, int64_t positions);

  const float* cos() const { return cos_.data(); }
  const float* sin() const { return sin_.data(); }

 private:
  Buffer cos_, sin_;
};

}  // namespace brisk
