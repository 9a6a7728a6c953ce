// Tensor parallelism's split of one model over ranks (issue 23, Megatron-style): which share of
// each weight a rank holds, derived from the roles' split axes (models/tensor_spec.h).
//
//   column-parallel (outputs split): q, k, v and gate, up, with their biases; a rank owns
//     n_heads / size query heads, their kv heads, and intermediate_size / size MLP channels;
//   row-parallel (inputs split): o and down, whose partial products every rank sums with one
//     all-reduce (parallel/tensor_parallel_backend.h); their biases stay on rank 0 only, zeros
//     elsewhere, so the sum adds them once;
//   vocabulary-parallel: the token embedding's and the head's rows (vocabulary_shard): a rank
//     looks up the ids it holds (zeros for the others) and the ranks sum the rows; its head
//     computes its share of the logits, which the ranks gather (parallel/tensor_parallel_backend.h);
//     a head tied to the embedding is the same shard;
//   replicated: norms (and position embeddings).
// Grouped-query attention with fewer kv heads than ranks replicates them: each rank keeps the one
// kv head its query heads read. The rank's model is then an ordinary model of a smaller config
// (heads, kv heads and MLP width divided), so the family's forward runs unchanged.
#pragma once

#include <cstdint>

#include "formats/weight_store.h"
#include "models/model_config.h"
#include "models/tensor_spec.h"

namespace brisk {

struct TensorParallelRank {
  int64_t rank = 0;
  int64_t size = 1;  // 1: no tensor parallelism
};

// The vocabulary rows [begin, end) rank tp.rank holds: ceil(vocab / size) each, the last rank
// the rest.
struct VocabularyShard {
  int64_t begin = 0, end = 0;
  int64_t rows() const { return end - begin; }
};
VocabularyShard vocabulary_shard(int64_t vocab, TensorParallelRank tp);
// Whether a tensor of this role is [vocab, hidden] rows split by vocabulary_shard (the token
// embedding and the head).
bool splits_vocabulary(Role role);

// Turns `config` into rank tp.rank's share and replaces every split tensor of `store` by that
// rank's slice (copied into memory the store owns). Errors name what does not divide or cannot be
// split (a family whose forward derives widths from the model width, low-rank factors, a
// quantized matrix cut inside a block).
Status shard_for_tensor_parallel(ModelConfig& config, WeightStore& store, TensorParallelRank tp);

}  // namespace brisk
