// The activations of a pre-norm decoder layer stack (Llama, Gemma), [max_rows, width] each,
// allocated once when the model is built. `allocate` is the model's Model::activation.
#pragma once

#include <algorithm>
#include <functional>

#include "models/model_config.h"
#include "ops/backend.h"

namespace brisk {

struct DecoderActivations {
  DecoderActivations(const ModelConfig& c, const std::function<Buffer(int64_t)>& allocate)
      : x(allocate(c.hidden_size)),
        h(allocate(std::max(c.hidden_size, c.n_heads * c.head_dim))),
        q(allocate(c.n_heads * c.head_dim)),
        k(allocate(c.n_kv_heads * c.head_dim)),
        v(allocate(c.n_kv_heads * c.head_dim)),
        attn(allocate(c.n_heads * c.head_dim)),
        gate(allocate(c.intermediate_size)),
        up(allocate(c.intermediate_size)) {}

  Buffer x;     // the residual stream
  Buffer h;     // a normed copy, or a sublayer's output
  Buffer q, k, v, attn;
  Buffer gate, up;
};

}  // namespace brisk
