// A model made of some of another's layers (pipeline stages, depth pruning): which tensor of the
// larger model becomes which of the smaller, from both configs' tensor lists (no name surgery).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/model_config.h"

namespace brisk {

// The names of `from`'s per-layer tensors whose layer l becomes layer new_index[l] of `to` (-1:
// dropped), mapped to their names in `to`. A tensor with no counterpart in `to` is an error.
Result<std::map<std::string, std::string>> renamed_layer_tensors(const ModelConfig& from, const ModelConfig& to,
                                                                 const std::vector<int64_t>& new_index);

}  // namespace brisk
