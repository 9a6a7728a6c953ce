// Writes ONNX models: brisk's own encoder of the messages of the published onnx.proto (IR version
// 8) that a decoder graph needs -- ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto
// (raw data, or external data in a side file), ValueInfoProto with symbolic dimensions, nodes of
// other operator domains -- in protobuf's wire format (varints, fixed32, length-delimited fields). No protobuf library: the
// subset is small, its field numbers are a published, frozen schema, and onnxruntime reads it back
// in the tests (docs/DESIGN.md, Export).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "core/error.h"

namespace brisk::onnx {

// TensorProto.DataType values.
enum class ElementType : int32_t { Float = 1, Uint8 = 2, Int8 = 3, Int32 = 6, Int64 = 7, Bool = 9, Float16 = 10 };

// A dimension of a graph input or output: a fixed size or a symbolic name ("batch_size").
using Dim = std::variant<int64_t, std::string>;

struct Attribute {
  std::string name;
  std::variant<int64_t, float, std::vector<int64_t>, std::string> value;
};

class GraphBuilder {
 public:
  void add_input(const std::string& name, ElementType type, const std::vector<Dim>& dims);
  void add_output(const std::string& name, ElementType type, const std::vector<Dim>& dims);
  // Constant tensors; bytes are the little-endian elements, row-major.
  void add_initializer(const std::string& name, ElementType type, const std::vector<int64_t>& dims,
                       std::vector<uint8_t> bytes);
  void add_floats(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values);
  void add_int64s(const std::string& name, const std::vector<int64_t>& dims, const std::vector<int64_t>& values);
  // One node; returns its first output's name.
  std::string node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<std::string>& outputs,
                   const std::vector<Attribute>& attributes = {});
  // A node with one output named by the builder ("<op>_<n>").
  std::string op(const std::string& op, const std::vector<std::string>& inputs,
                 const std::vector<Attribute>& attributes = {});
  // A node of an operator set other than ONNX's own (onnxruntime's "com.microsoft" contrib ops);
  // the model then imports that domain at version 1.
  std::string domain_op(const std::string& domain, const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<Attribute>& attributes);

  uint64_t initializer_bytes() const;

  // Writes `path` (a .onnx file); initializers of at least `external_threshold` bytes go to
  // `path` + "_data" (ONNX external data, as Optimum writes models over protobuf's 2 GB limit).
  // Both files appear only when complete.
  Status write(const std::filesystem::path& path, const std::string& graph_name, int64_t opset,
               uint64_t external_threshold) const;

 private:
  struct ValueInfo {
    std::string name;
    ElementType type;
    std::vector<Dim> dims;
  };
  struct Initializer {
    std::string name;
    ElementType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> bytes;
  };
  struct Node {
    std::string domain, op;
    std::vector<std::string> inputs, outputs;
    std::vector<Attribute> attributes;
  };
  std::vector<ValueInfo> inputs_, outputs_;
  std::vector<Initializer> initializers_;
  std::vector<Node> nodes_;
  int64_t next_name_ = 0;
};

}  // namespace brisk::onnx
