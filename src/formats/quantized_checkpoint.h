// Quantized safetensors checkpoints (docs/FORMAT.md, "Quantized safetensors"): the on-disk
// layouts of compressed-tensors ("pack-quantized", "naive-quantized"/"int-quantized",
// "float-quantized") plus brisk's documented "brisk-codebook" for NF4 / log2, converted to and
// from the runtime block formats of core/quant_blocks.h.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/thread_pool.h"
#include "formats/json_file.h"
#include "formats/safetensors.h"
#include "formats/weight_store.h"

namespace brisk {

// How a model was quantized, as recorded in config.json's "quantization_config".
struct QuantizedLayout {
  DType runtime = DType::Q4;  // the runtime block dtype every quantized matrix gets
  int64_t group = 128;        // values per scale (Q4/NF4/LOG4); 0 = one scale per output row
  Symmetry symmetry = Symmetry::Symmetric;
};

// One entry of "config_groups": the modules it applies to and how they are quantized. A target
// is a module name ("lm_head"), "re:" and a regular expression matched from the start of the
// name, or the class "Linear" (every linear layer); a module takes the group that names it
// exactly, else the first whose regex matches, else the "Linear" group (compressed-tensors'
// order of precedence).
struct QuantizedGroup {
  std::vector<std::string> targets;
  QuantizedLayout layout;
};

// A tensor that owns its bytes (what the writer produces).
struct OwnedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  NamedTensor view() const { return {name, Tensor{const_cast<uint8_t*>(bytes.data()), dtype, shape}}; }
};

// The disk tensors for one runtime matrix `weight` ([out, in] of a block dtype) stored under
// `weight_name` ("....weight"): e.g. weight_packed / weight_scale / weight_zero_point /
// weight_shape for pack-quantized. Rows are converted on `pool`'s threads when given.
std::vector<OwnedTensor> quantized_disk_tensors(const std::string& weight_name, const Tensor& weight,
                                                const QuantizedLayout& layout, ThreadPool* pool = nullptr);

// config.json's "quantization_config" for the groups (the first sets the top-level format; a
// group stored in another format names its own); `ignore` names the modules left unquantized.
Json quantization_config_json(const std::vector<QuantizedGroup>& groups, const std::vector<std::string>& ignore);

// Reads "quantization_config" (where: config.json path, for errors).
Result<std::vector<QuantizedGroup>> parse_quantization_config(const Json& config, const std::string& where);

// The group whose targets take `module` ("model.layers.0.mlp.up_proj"), or null.
const QuantizedGroup* group_for(const std::vector<QuantizedGroup>& groups, const std::string& module);

// Converts every quantized matrix in `store` (found by its "..weight_scale") into one runtime
// block tensor named "...weight", once, at load, each by its group's layout.
Status convert_quantized_tensors(const std::vector<QuantizedGroup>& groups, WeightStore& store);

}  // namespace brisk
