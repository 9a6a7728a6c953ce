// How the weight matrices of an exported ONNX graph are stored and multiplied:
//   fp32  a float initializer [in, out] and MatMul;
//   fp16  a float16 initializer and a Cast to float before the MatMul (onnxruntime folds the Cast
//         when the session loads: half the file, fp32 arithmetic);
//   int8  int8 codes [in, out] with one scale per output channel, DequantizeLinear (axis 1) and
//         MatMul -- the QDQ form;
//   int4  onnxruntime's com.microsoft MatMulNBits: 4-bit codes packed two per byte along the
//         input dimension, one fp32 scale per block of `group` inputs, zero points (packed) when
//         a block's zero is not the default 8.
// Every form computes x . W^T with W exactly the codes and scales brisk holds (a brisk w8 or w4
// model keeps its own codes); what brisk's kernels do beyond that -- quantizing activations to
// int8 per 32 values on AVX-512 VNNI -- is not part of the graph (docs/DESIGN.md, Export).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "formats/onnx_writer.h"

namespace brisk {

// Auto: each matrix the nearest to what it is stored as (brisk w8 / w8a8 -> int8, w4 -> int4,
// everything else decoded to fp32).
enum class OnnxMatrixType { Auto, F32, F16, Int8, Int4 };

Result<OnnxMatrixType> parse_onnx_matrix_type(std::string_view name);
std::string_view onnx_matrix_type_name(OnnxMatrixType type);
// Block sizes MatMulNBits takes for matrices quantized by the export itself.
constexpr int64_t kOnnxInt4Groups[] = {32, 64, 128};

// The graph's file name as transformers.js picks it by dtype: model.onnx (fp32), model_fp16.onnx,
// model_quantized.onnx (int8, its "q8"), model_q4.onnx (any int4 matrix).
std::string onnx_file_name(const std::map<std::string, int64_t>& matrices_by_type);

// v [rows, cols] row-major -> [cols, rows].
std::vector<float> transposed(const std::vector<float>& v, int64_t rows, int64_t cols);

class OnnxMatrixWriter {
 public:
  // int4_group: inputs per scale for float matrices exported as int4 (brisk's own w4 matrices
  // keep their 128).
  OnnxMatrixWriter(onnx::GraphBuilder& graph, OnnxMatrixType type, int64_t int4_group)
      : graph_(graph), type_(type), int4_group_(int4_group) {}

  // The form `w` (a [out, in] matrix as a checkpoint holds it, named `source_name` there) takes,
  // or an error naming it when the type asked for cannot hold it (an NF4 matrix as int4, say).
  Result<OnnxMatrixType> form_of(const Tensor& w, const std::string& source_name) const;
  // Adds w's initializers (named after `name`) and the nodes of x . W^T; returns the product's
  // name. Call form_of(w, source_name) first: this assumes it succeeded.
  std::string multiply(const std::string& x, const Tensor& w, const std::string& source_name, const std::string& name);
  // Float values [rows, cols] as an initializer in this export's float storage (fp16 for the
  // fp16 form, else fp32) and the name of its fp32 value (a Cast when stored as fp16).
  std::string float_table(const std::string& name, const Tensor& t);

  // How many matrices each form got: {"fp32": 2, "int4": 28}.
  const std::map<std::string, int64_t>& matrices_by_type() const { return counts_; }

 private:
  std::string int8_product(const std::string& x, const Tensor& w, const std::string& name);
  std::string int4_product(const std::string& x, const Tensor& w, const std::string& name);

  onnx::GraphBuilder& graph_;
  OnnxMatrixType type_;
  int64_t int4_group_;
  std::map<std::string, int64_t> counts_;
};

}  // namespace brisk
