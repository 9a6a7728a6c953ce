// The registry of architecture families: one line per family.
#include "models/architecture.h"

#include <algorithm>

namespace brisk {

extern const Architecture kLlamaArchitecture;  // models/llama.cc
extern const Architecture kGpt2Architecture;   // models/gpt2.cc
extern const Architecture kGemmaArchitecture;  // models/gemma.cc
extern const Architecture kBertArchitecture;   // models/bert.cc

const std::vector<const Architecture*>& architectures() {
  static const std::vector<const Architecture*> all = {
      &kLlamaArchitecture,
      &kGpt2Architecture,
      &kGemmaArchitecture,
      &kBertArchitecture,
  };
  return all;
}

const Architecture* find_architecture(std::string_view model_type) {
  for (const Architecture* a : architectures())
    for (std::string_view t : a->model_types)
      if (t == model_type) return a;
  return nullptr;
}

std::string known_model_types() {
  std::vector<std::string> names;
  for (const Architecture* a : architectures())
    for (std::string_view t : a->model_types) names.emplace_back(t);
  std::sort(names.begin(), names.end());
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace brisk
