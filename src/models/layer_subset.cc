#include "models/layer_subset.h"

#include <tuple>

#include "models/architecture.h"

namespace brisk {

Result<std::map<std::string, std::string>> renamed_layer_tensors(const ModelConfig& from, const ModelConfig& to,
                                                                 const std::vector<int64_t>& new_index) {
  std::map<std::tuple<int64_t, Role, Part, Factor>, std::string> target;
  for (const TensorSpec& s : to.arch->tensors(to))
    if (s.layer != kNoLayer) target[{s.layer, s.role, s.part, s.factor}] = s.name;
  std::map<std::string, std::string> renamed;
  for (const TensorSpec& s : from.arch->tensors(from)) {
    if (s.layer == kNoLayer || new_index[size_t(s.layer)] < 0) continue;
    auto it = target.find({new_index[size_t(s.layer)], s.role, s.part, s.factor});
    if (it == target.end()) return make_error("'" + s.name + "' has no place in the smaller model");
    renamed[s.name] = it->second;
  }
  return renamed;
}

}  // namespace brisk
