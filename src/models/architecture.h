// One declaration per architecture family (models/<family>.cc) and the registry of them. A
// declaration says which config.json model_types it accepts and parses their fields, lists its
// tensors with roles, names its GGUF counterparts, and builds the model. Everything else
// (loading, GGUF mapping, quantization groups, synth, counts) derives from it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "formats/config_fields.h"
#include "models/model_config.h"
#include "models/tensor_spec.h"

namespace brisk {

class Backend;
class Model;
struct ModelOptions;
class GgufFile;
class GgufWriter;

// A role whose llama.cpp tensor name in this architecture differs from the role table's
// (models/tensor_spec.cc kRoleNames): BERT's post-norms are attn_output_norm / layer_output_norm.
struct GgufRoleName {
  Role role;
  std::string_view gguf;  // blk.N.<gguf>.weight
};

// How a GGUF file of one general.architecture value maps onto this family. Everything an
// architecture's files do differently from the Hugging Face layout is said here, so the mapping
// (models/gguf_model.cc) stays generic.
struct GgufArchitecture {
  std::string_view name;      // general.architecture
  std::string_view model_type;  // the config.json model_type it stands for
  // llama.cpp's converter interleaves the rotary halves of each Q and K head for these.
  bool rotary_rows_interleaved = false;
  // llama.cpp's converter stored norm weights with their TensorSpec::load_offset already added
  // (Gemma: 1 + w): the mapping subtracts it again, so the store holds Hugging Face's w.
  bool norms_hold_offset = false;
  std::vector<GgufRoleName> role_names{};  // exceptions to the role table's names
  // Tensors that hold configuration rather than weights (Phi-3's LongRoPE factors, Llama 3.1's
  // rope_freqs): the family's gguf_config reads them, the weight store skips them.
  std::vector<std::string_view> config_tensors{};
  // Other config.json model_types brisk export writes as this architecture (llama.cpp's
  // converter writes Mistral checkpoints as llama).
  std::vector<std::string_view> also_exports{};
};

// The config.json keys that give a model of the family its size: the parser reads them, and tools
// that write a config of a new shape (distillation students, `brisk train --shape`) set them.
// kv_heads "": the family has no grouped keys (kv heads = heads); head_dim "": always hidden / heads;
// all "": no tool writes new shapes of the family.
struct ShapeKeys {
  const char *layers = "", *hidden = "", *heads = "", *kv_heads = "", *ffn = "", *head_dim = "";
};

struct Architecture {
  std::string_view family;                    // "llama"
  std::vector<std::string_view> model_types;  // config.json model_type values it accepts
  ShapeKeys shape_keys;
  // Reads the family's fields into `base` (model_type, token ids, quantization already set).
  Result<ModelConfig> (*parse_config)(const ConfigFields& fields, ModelConfig base);
  // Every tensor of a model of this config, in load order (Model::visit_tensors walks the same
  // specs with the built model's slots).
  std::vector<TensorSpec> (*tensors)(const ModelConfig& config);
  std::unique_ptr<Model> (*make)(const ModelConfig& config, Backend& backend, const ModelOptions& options);
  std::vector<GgufArchitecture> gguf;         // empty: no GGUF mapping
  // GGUF metadata -> config.json fields for parse_config (null when gguf is empty).
  Result<Json> (*gguf_config)(const GgufFile& file, const GgufArchitecture& arch);
  // The inverse, for brisk export: the "<arch>.*" keys of a config of `arch` (an error naming
  // what GGUF cannot say). Null: the family is not exported to GGUF.
  Status (*gguf_metadata)(const ModelConfig& config, const GgufArchitecture& arch, GgufWriter& out) = nullptr;
  // Its forward reads every width from the config (q/k/v from heads x head_dim, the MLP from
  // intermediate_size), so a rank's share of heads and channels runs as a smaller model
  // (models/tensor_parallel.h).
  bool tensor_parallel = false;
  // Pipeline parallelism (models/pipeline_stage.h): narrows the family's per-layer settings of a
  // config whose n_layers already counts layers [first, end) of the full model only. Null: the
  // family's forward does not run as pipeline stages.
  void (*select_layers)(ModelConfig& config, int64_t first, int64_t end) = nullptr;
  // Per layer: the sliding window of keys it attends to (0: all). Null or empty: no windows.
  std::vector<int64_t> (*attention_windows)(const ModelConfig& config) = nullptr;
};

// Every registered family (models/registry.cc).
const std::vector<const Architecture*>& architectures();
// The declaration accepting config.json's model_type, or null.
const Architecture* find_architecture(std::string_view model_type);
// The accepted model_types, sorted and comma-separated: for errors.
std::string known_model_types();

// A declaration's tensor list, collected from a weights struct's visit(config, visitor) without
// building a model: `Weights` is the family's plain struct of slots.
template <class Weights>
std::vector<TensorSpec> collect_tensor_specs(const ModelConfig& config) {
  Weights weights(config);
  std::vector<TensorSpec> specs;
  weights.visit(config, [&](const TensorSpec& spec, Tensor&) { specs.push_back(spec); });
  return specs;
}

// A declaration's constructor: `M` is the family's Model subclass.
template <class M>
std::unique_ptr<Model> construct_model(const ModelConfig& config, Backend& backend, const ModelOptions& options) {
  return std::make_unique<M>(config, backend, options);
}

}  // namespace brisk
