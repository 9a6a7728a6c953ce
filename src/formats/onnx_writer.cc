#include "formats/onnx_writer.h"

#include <cstring>
#include <fstream>
#include <set>
#include <unistd.h>

namespace brisk::onnx {

namespace {

// Protobuf wire format: a field is a tag (number << 3 | wire type) and a value; 0 = varint,
// 2 = length-delimited (strings, bytes, nested messages), 5 = 32-bit.
class Message {
 public:
  Message& varint(int field, uint64_t v) {
    tag(field, 0);
    put_varint(v);
    return *this;
  }
  Message& bytes(int field, const void* data, size_t n) {
    tag(field, 2);
    put_varint(n);
    out_.append(static_cast<const char*>(data), n);
    return *this;
  }
  Message& string(int field, const std::string& s) { return bytes(field, s.data(), s.size()); }
  Message& message(int field, const Message& m) { return bytes(field, m.out_.data(), m.out_.size()); }
  Message& f32(int field, float v) {
    tag(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);
    out_.append(b, 4);
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  void tag(int field, int wire) { put_varint(uint64_t(field) << 3 | uint64_t(wire)); }
  void put_varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(char(v | 0x80));
      v >>= 7;
    }
    out_.push_back(char(v));
  }
  std::string out_;
};

// onnx.proto field numbers (ONNX IR version 8).
namespace field {
constexpr int kModelIrVersion = 1, kModelProducerName = 2, kModelProducerVersion = 3, kModelGraph = 7,
              kModelOpset = 8;
constexpr int kOpsetDomain = 1, kOpsetVersion = 2;
constexpr int kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphInput = 11, kGraphOutput = 12;
constexpr int kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4, kNodeAttribute = 5, kNodeDomain = 7;
constexpr int kAttrName = 1, kAttrF = 2, kAttrI = 3, kAttrS = 4, kAttrInts = 8, kAttrType = 20;
constexpr int kTensorDims = 1, kTensorDataType = 2, kTensorName = 8, kTensorRawData = 9, kTensorExternalData = 13,
              kTensorDataLocation = 14;
constexpr int kEntryKey = 1, kEntryValue = 2;
constexpr int kValueInfoName = 1, kValueInfoType = 2;
constexpr int kTypeTensor = 1, kTensorTypeElem = 1, kTensorTypeShape = 2;
constexpr int kShapeDim = 1, kDimValue = 1, kDimParam = 2;
}  // namespace field
// AttributeProto.AttributeType values.
enum AttributeType : uint64_t { kFloat = 1, kInt = 2, kString = 3, kInts = 7 };
constexpr int64_t kIrVersion = 8;  // opsets up to 17

}  // namespace

void GraphBuilder::add_input(const std::string& name, ElementType type, const std::vector<Dim>& dims) {
  inputs_.push_back({name, type, dims});
}

void GraphBuilder::add_output(const std::string& name, ElementType type, const std::vector<Dim>& dims) {
  outputs_.push_back({name, type, dims});
}

void GraphBuilder::add_initializer(const std::string& name, ElementType type, const std::vector<int64_t>& dims,
                                   std::vector<uint8_t> bytes) {
  initializers_.push_back({name, type, dims, std::move(bytes)});
}

void GraphBuilder::add_floats(const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  add_initializer(name, ElementType::Float, dims, std::move(bytes));
}

void GraphBuilder::add_int64s(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& values) {
  std::vector<uint8_t> bytes(values.size() * 8);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  add_initializer(name, ElementType::Int64, dims, std::move(bytes));
}

std::string GraphBuilder::node(const std::string& op, const std::vector<std::string>& inputs,
                               const std::vector<std::string>& outputs, const std::vector<Attribute>& attributes) {
  nodes_.push_back({"", op, inputs, outputs, attributes});
  return outputs.front();
}

std::string GraphBuilder::domain_op(const std::string& domain, const std::string& op,
                                    const std::vector<std::string>& inputs, const std::vector<Attribute>& attributes) {
  const std::string output = op + "_" + std::to_string(next_name_++);
  nodes_.push_back({domain, op, inputs, {output}, attributes});
  return output;
}

std::string GraphBuilder::op(const std::string& op, const std::vector<std::string>& inputs,
                             const std::vector<Attribute>& attributes) {
  return node(op, inputs, {op + "_" + std::to_string(next_name_++)}, attributes);
}

uint64_t GraphBuilder::initializer_bytes() const {
  uint64_t n = 0;
  for (const Initializer& i : initializers_) n += i.bytes.size();
  return n;
}

Status GraphBuilder::write(const std::filesystem::path& path, const std::string& graph_name, int64_t opset,
                           uint64_t external_threshold) const {
  const std::filesystem::path data_path = path.string() + "_data";
  const std::string suffix = ".partial." + std::to_string(::getpid());
  const std::filesystem::path tmp = path.string() + suffix, data_tmp = data_path.string() + suffix;
  auto fail = [&](const std::string& message) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    std::filesystem::remove(data_tmp, ignored);
    return make_error(message);
  };

  auto value_info = [](const ValueInfo& v) {
    Message shape;
    for (const Dim& d : v.dims) {
      Message dim;
      if (const int64_t* size = std::get_if<int64_t>(&d)) dim.varint(field::kDimValue, uint64_t(*size));
      else dim.string(field::kDimParam, std::get<std::string>(d));
      shape.message(field::kShapeDim, dim);
    }
    Message tensor_type;
    tensor_type.varint(field::kTensorTypeElem, uint64_t(v.type)).message(field::kTensorTypeShape, shape);
    Message type;
    type.message(field::kTypeTensor, tensor_type);
    Message info;
    info.string(field::kValueInfoName, v.name).message(field::kValueInfoType, type);
    return info;
  };

  Message graph;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    const Node& node = nodes_[n];
    Message m;
    for (const std::string& i : node.inputs) m.string(field::kNodeInput, i);
    for (const std::string& o : node.outputs) m.string(field::kNodeOutput, o);
    m.string(field::kNodeName, node.op + "_node_" + std::to_string(n)).string(field::kNodeOpType, node.op);
    if (!node.domain.empty()) m.string(field::kNodeDomain, node.domain);
    for (const Attribute& a : node.attributes) {
      Message attr;
      attr.string(field::kAttrName, a.name);
      if (const int64_t* i = std::get_if<int64_t>(&a.value)) attr.varint(field::kAttrI, uint64_t(*i)).varint(field::kAttrType, kInt);
      else if (const float* f = std::get_if<float>(&a.value)) attr.f32(field::kAttrF, *f).varint(field::kAttrType, kFloat);
      else if (const auto* ints = std::get_if<std::vector<int64_t>>(&a.value)) {
        for (int64_t v : *ints) attr.varint(field::kAttrInts, uint64_t(v));
        attr.varint(field::kAttrType, kInts);
      } else {
        attr.string(field::kAttrS, std::get<std::string>(a.value)).varint(field::kAttrType, kString);
      }
      m.message(field::kNodeAttribute, attr);
    }
    graph.message(field::kGraphNode, m);
  }
  graph.string(field::kGraphName, graph_name);

  std::ofstream data;
  uint64_t data_offset = 0;
  for (const Initializer& init : initializers_) {
    Message t;
    for (int64_t d : init.dims) t.varint(field::kTensorDims, uint64_t(d));
    t.varint(field::kTensorDataType, uint64_t(init.type)).string(field::kTensorName, init.name);
    if (init.bytes.size() >= external_threshold) {
      if (!data.is_open()) {
        data.open(data_tmp, std::ios::binary | std::ios::trunc);
        if (!data) return fail(data_tmp.string() + ": cannot open for writing");
      }
      data.write(reinterpret_cast<const char*>(init.bytes.data()), std::streamsize(init.bytes.size()));
      auto entry = [&](const std::string& key, const std::string& value) {
        Message e;
        e.string(field::kEntryKey, key).string(field::kEntryValue, value);
        t.message(field::kTensorExternalData, e);
      };
      entry("location", data_path.filename().string());
      entry("offset", std::to_string(data_offset));
      entry("length", std::to_string(init.bytes.size()));
      t.varint(field::kTensorDataLocation, 1);  // EXTERNAL
      data_offset += init.bytes.size();
    } else {
      t.bytes(field::kTensorRawData, init.bytes.data(), init.bytes.size());
    }
    graph.message(field::kGraphInitializer, t);
  }
  for (const ValueInfo& v : inputs_) graph.message(field::kGraphInput, value_info(v));
  for (const ValueInfo& v : outputs_) graph.message(field::kGraphOutput, value_info(v));

  Message model;
  model.varint(field::kModelIrVersion, kIrVersion)
      .string(field::kModelProducerName, "brisk")
      .string(field::kModelProducerVersion, "export")
      .message(field::kModelGraph, graph);
  std::set<std::string> domains = {""};
  for (const Node& node : nodes_) domains.insert(node.domain);
  for (const std::string& domain : domains) {
    Message opset_id;
    opset_id.string(field::kOpsetDomain, domain).varint(field::kOpsetVersion, domain.empty() ? uint64_t(opset) : 1);
    model.message(field::kModelOpset, opset_id);
  }
  if (model.str().size() >= (uint64_t(1) << 31))
    return fail(path.string() + ": the graph is over protobuf's 2 GB limit even with its weights outside it");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return fail(tmp.string() + ": cannot open for writing");
    out.write(model.str().data(), std::streamsize(model.str().size()));
    if (!out || (data.is_open() && !data.flush())) return fail(tmp.string() + ": write failed (disk full?)");
  }
  std::error_code ec;
  if (data.is_open()) {
    data.close();
    std::filesystem::rename(data_tmp, data_path, ec);
    if (ec) return fail(data_path.string() + ": cannot rename: " + ec.message());
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fail(path.string() + ": cannot rename: " + ec.message());
  return ok_status();
}

}  // namespace brisk::onnx
