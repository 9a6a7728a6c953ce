// Rotary embedding tables: cos and sin of position * inverse frequency for every position a
// model instance supports, [positions, head_dim / 2] each, in backend memory.
#pragma once

#include <vector>

#include "models/model_config.h"
#include "ops/backend.h"

namespace brisk {

// The tables' values on the host, [positions, head_dim / 2] each: the angle position * inv_freq
// in fp32 (as transformers forms it), then cos and sin exactly, times LongRoPE's attention_factor.
struct RopeTableValues {
  std::vector<float> cos, sin;
};
RopeTableValues rope_table_values(const RopeConfig& rope, int64_t head_dim, int64_t positions);

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
