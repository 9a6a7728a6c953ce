// Sparse safetensors checkpoints (docs/FORMAT.md, "Sparse safetensors"): compressed-tensors'
// "sparse-bitmask" (any sparsity) and "sparse-24-bitmask" (2:4) layouts, named in config.json's
// quantization_config.sparsity_config. A matrix "X.weight" [rows, cols] is stored as
//   X.weight.shape       I64 [2]                 rows, cols
//   X.weight.compressed  values (F32/F16/BF16)   the kept values in row-major order: every
//                        non-zero (sparse-bitmask, 1-D) or exactly cols / 2 per row (sparse-24,
//                        [rows, cols / 2]: a group of 4 with fewer than 2 non-zeros keeps zeros)
//   X.weight.bitmask     U8 [rows, ceil(cols / 8)] bit b of byte j (least significant first) set
//                        where column 8 j + b holds a kept value
//   X.weight.row_offsets I64 [rows]              sparse-bitmask only: the row's first value
// At load each becomes the dense matrix again (the kernels run on dense weights).
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "formats/json_file.h"
#include "formats/quantized_checkpoint.h"
#include "formats/weight_store.h"

namespace brisk {

enum class SparseFormat { Bitmask, Bitmask24 };
const char* sparse_format_name(SparseFormat f);  // "sparse-bitmask", "sparse-24-bitmask"

// The stored tensors of dense matrix `weight` (F32/F16/BF16 [rows, cols]) under `weight_name`.
// Bitmask24 needs every group of 4 along a row to hold at most 2 non-zeros (an error otherwise).
Result<std::vector<OwnedTensor>> sparse_disk_tensors(const std::string& weight_name, const Tensor& weight,
                                                     SparseFormat format);

// config.json's quantization_config for a model whose `targets` modules are stored in `format`.
Json sparsity_quantization_config(SparseFormat format, double global_sparsity, const std::vector<std::string>& targets);

// Whether quantization_config records sparse storage alone (a sparsity_config, no config_groups):
// weights that are float once decompressed.
bool is_sparse_only(const Json& quantization_config);

// Whether quantization_config names a sparsity_config, and its format (an error for formats
// brisk does not read, naming them). `where`: config.json's path, for errors.
Result<bool> has_sparsity_config(const Json& quantization_config, const std::string& where);

// Replaces every stored "X.weight.compressed" group by the dense "X.weight" (shapes, counts and
// offsets checked, errors naming the tensor).
Status decompress_sparse_tensors(const Json& quantization_config, WeightStore& store, const std::string& where);

}  // namespace brisk
