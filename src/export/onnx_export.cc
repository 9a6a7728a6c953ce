#include "export/onnx_export.h"

#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "core/quant_blocks.h"
#include "export/onnx_matrices.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "formats/model_folder.h"
#include "formats/onnx_writer.h"
#include "models/architecture.h"
#include "models/model.h"

namespace brisk {

namespace {

using onnx::Attribute;
using onnx::ElementType;
using onnx::GraphBuilder;

// The tensors of a checkpoint by (layer, role, part).
class RoleWeights {
 public:
  RoleWeights(const ModelConfig& c, const WeightStore& store) {
    for (const TensorSpec& spec : c.arch->tensors(c))
      if (const StoredTensor* s = store.find(spec.name)) stored_[{spec.layer, spec.role, spec.part}] = {spec.name, s};
  }
  bool has(int64_t layer, Role role, Part part = Part::Weight) const {
    return stored_.count({layer, role, part}) != 0;
  }
  const Tensor& tensor(int64_t layer, Role role, Part part = Part::Weight) const {
    return stored_.at({layer, role, part}).second->tensor;
  }
  // Its name in the checkpoint ("model.layers.0.self_attn.q_proj.weight").
  const std::string& name(int64_t layer, Role role) const { return stored_.at({layer, role, Part::Weight}).first; }

 private:
  std::map<std::tuple<int64_t, Role, Part>, std::pair<std::string, const StoredTensor*>> stored_;
};

// What this version writes; everything else is named in the error.
Status check_exportable(const ModelConfig& c) {
  if (c.arch->family != "llama")
    return make_error("ONNX export of model_type '" + c.model_type + "' (family " + std::string(c.arch->family) +
                      ") is not supported yet (the Llama family is)");
  if (!c.low_rank.empty())
    return make_error("ONNX export of a low-rank factored model (brisk_low_rank) is not supported yet");
  if (c.rope.type == RopeType::LongRope)
    return make_error("ONNX export: LongRoPE picks its factors by context length; not supported yet");
  if (c.arch->attention_windows)
    for (int64_t w : c.arch->attention_windows(c))
      if (w > 0)
        return make_error("ONNX export: sliding-window attention (window " + std::to_string(w) + ") is not supported yet");
  return ok_status();
}

class LlamaGraph {
 public:
  LlamaGraph(const ModelConfig& c, const RoleWeights& w, GraphBuilder& g, OnnxMatrixWriter& matrices, int64_t positions)
      : c_(c), w_(w), g_(g), matrices_(matrices), positions_(positions) {}

  Status build() {
    const int64_t L = c_.n_layers;
    // The roles this graph reads; a family storing others (Phi-3's fused qkv and gate_up) is refused.
    for (Role role : {Role::TokenEmbed, Role::FinalNorm})
      if (!w_.has(kNoLayer, role))
        return make_error("ONNX export: '" + c_.model_type + "' has no " + role_name(role) + " weight");
    for (int64_t l = 0; l < L; ++l)
      for (Role role : {Role::AttnNorm, Role::AttnQ, Role::AttnK, Role::AttnV, Role::AttnO, Role::MlpNorm, Role::MlpGate,
                        Role::MlpUp, Role::MlpDown})
        if (!w_.has(l, role))
          return make_error("ONNX export: layer " + std::to_string(l) + " of '" + c_.model_type + "' has no separate " +
                            role_name(role) + " weight (fused projections are not supported yet)");
    for (int64_t l = 0; l < L; ++l)
      for (Role role : kLinearRoles) BRISK_TRY(matrices_.form_of(w_.tensor(l, role), w_.name(l, role)));
    if (w_.has(kNoLayer, Role::Head)) BRISK_TRY(matrices_.form_of(w_.tensor(kNoLayer, Role::Head), w_.name(kNoLayer, Role::Head)));
    const std::vector<onnx::Dim> ids_dims = {"batch_size", "sequence_length"};
    g_.add_input("input_ids", ElementType::Int64, ids_dims);
    g_.add_input("attention_mask", ElementType::Int64, {"batch_size", "total_sequence_length"});
    g_.add_input("position_ids", ElementType::Int64, ids_dims);
    for (int64_t l = 0; l < L; ++l)
      for (const char* kv : {"key", "value"})
        g_.add_input("past_key_values." + std::to_string(l) + "." + kv, ElementType::Float,
                     {"batch_size", c_.n_kv_heads, "past_sequence_length", c_.head_dim});
    g_.add_output("logits", ElementType::Float, {"batch_size", "sequence_length", c_.vocab_size});
    for (int64_t l = 0; l < L; ++l)
      for (const char* kv : {"key", "value"})
        g_.add_output("present." + std::to_string(l) + "." + kv, ElementType::Float,
                      {"batch_size", c_.n_kv_heads, "total_sequence_length", c_.head_dim});
    constants();
    const std::string embed = matrices_.float_table("embed_tokens", w_.tensor(kNoLayer, Role::TokenEmbed));
    std::string h = g_.op("Gather", {embed, "input_ids"}, {{"axis", int64_t(0)}});
    rotary_tables();
    attention_mask();
    for (int64_t l = 0; l < L; ++l) h = layer(l, h);
    const std::string normed = rms_norm(h, vector(kNoLayer, Role::FinalNorm));
    std::string logits;
    if (w_.has(kNoLayer, Role::Head)) {
      logits = linear(normed, kNoLayer, Role::Head);
    } else {  // tied: the embedding table, transposed
      const std::string head = g_.op("Transpose", {embed}, {{"perm", std::vector<int64_t>{1, 0}}});
      logits = g_.op("MatMul", {normed, head});
    }
    g_.node("Identity", {logits}, {"logits"});
    return ok_status();
  }

 private:
  static constexpr Role kLinearRoles[] = {Role::AttnQ, Role::AttnK,    Role::AttnV, Role::AttnO,
                                          Role::MlpGate, Role::MlpUp, Role::MlpDown};

  static std::string weight_name(int64_t layer, Role role, Part part = Part::Weight) {
    return "w" + std::to_string(layer) + "_" + role_name(role) + (part == Part::Bias ? "_bias" : "");
  }

  // A vector (a norm's weight, a bias) as a float initializer.
  std::string vector(int64_t layer, Role role, Part part = Part::Weight) {
    const std::string name = weight_name(layer, role, part);
    const Tensor& t = w_.tensor(layer, role, part);
    g_.add_floats(name, t.shape, decode_tensor(t));
    return name;
  }

  std::string linear(const std::string& x, int64_t layer, Role role) {
    std::string y = matrices_.multiply(x, w_.tensor(layer, role), w_.name(layer, role), weight_name(layer, role));
    if (w_.has(layer, role, Part::Bias)) y = g_.op("Add", {y, vector(layer, role, Part::Bias)});
    return y;
  }

  // transformers' LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w, in fp32.
  std::string rms_norm(const std::string& x, const std::string& weight) {
    const std::string mean = g_.op("ReduceMean", {g_.op("Mul", {x, x})}, {{"axes", std::vector<int64_t>{-1}}, {"keepdims", int64_t(1)}});
    const std::string inv = g_.op("Reciprocal", {g_.op("Sqrt", {g_.op("Add", {mean, "eps"})})});
    return g_.op("Mul", {weight, g_.op("Mul", {x, inv})});
  }

  void constants() {
    g_.add_floats("eps", {}, {float(c_.norm_eps)});
    g_.add_floats("attention_scale", {}, {1.0f / std::sqrt(float(c_.head_dim))});
    g_.add_floats("masked", {}, {std::numeric_limits<float>::lowest()});
    g_.add_int64s("axes_0", {1}, {0});
    g_.add_int64s("axes_1", {1}, {1});
    g_.add_int64s("axes_2", {1}, {2});
    g_.add_int64s("axes_3", {1}, {3});
    g_.add_int64s("axes_1_2_3", {3}, {1, 2, 3});
    g_.add_int64s("zero", {}, {0});
    g_.add_int64s("one", {}, {1});
    const int64_t H = c_.n_heads, KV = c_.n_kv_heads, Dh = c_.head_dim;
    g_.add_int64s("shape_q", {4}, {0, 0, H, Dh});
    g_.add_int64s("shape_kv", {4}, {0, 0, KV, Dh});
    g_.add_int64s("shape_q_groups", {5}, {0, KV, H / KV, -1, Dh});
    g_.add_int64s("shape_heads", {4}, {0, H, -1, Dh});
    g_.add_int64s("shape_merged", {3}, {0, 0, H * Dh});
    g_.add_int64s("half_start", {1}, {Dh / 2});
    g_.add_int64s("half_end", {1}, {Dh});
    g_.add_int64s("first_start", {1}, {0});
    g_.add_int64s("first_end", {1}, {Dh / 2});
  }

  // cos and sin of every position's angles, [positions, head_dim] (halves repeated, as
  // transformers' rotary embedding), gathered by position_ids into [batch, 1, seq, head_dim].
  void rotary_tables() {
    const std::vector<float> inv = c_.rope_inv_freq(positions_);
    const int64_t Dh = c_.head_dim, half = Dh / 2;
    std::vector<float> cos(size_t(positions_ * Dh)), sin(cos.size());
    const float magnitude = float(c_.rope.type == RopeType::LongRope ? c_.rope.attention_factor : 1.0);
    for (int64_t p = 0; p < positions_; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const float angle = float(p) * inv[size_t(i)];
        for (int64_t j : {i, i + half}) {
          cos[size_t(p * Dh + j)] = std::cos(angle) * magnitude;
          sin[size_t(p * Dh + j)] = std::sin(angle) * magnitude;
        }
      }
    g_.add_floats("rope_cos", {positions_, Dh}, cos);
    g_.add_floats("rope_sin", {positions_, Dh}, sin);
    cos_ = g_.op("Unsqueeze", {g_.op("Gather", {"rope_cos", "position_ids"}, {{"axis", int64_t(0)}}), "axes_1"});
    sin_ = g_.op("Unsqueeze", {g_.op("Gather", {"rope_sin", "position_ids"}, {{"axis", int64_t(0)}}), "axes_1"});
  }

  // allowed [batch, 1, 1, seq, total]: key j is seen by query i when j <= past + i and the mask
  // keeps j (padding excluded).
  void attention_mask() {
    const std::string total = g_.op("Squeeze", {g_.op("Shape", {"attention_mask"}, {{"start", int64_t(1)}}), "axes_0"});
    const std::string seq = g_.op("Squeeze", {g_.op("Shape", {"input_ids"}, {{"start", int64_t(1)}}), "axes_0"});
    const std::string past = g_.op("Sub", {total, seq});
    const std::string keys = g_.op("Unsqueeze", {g_.op("Range", {"zero", total, "one"}), "axes_0"});       // [1, total]
    const std::string queries = g_.op("Unsqueeze", {g_.op("Range", {past, total, "one"}), "axes_1"});     // [seq, 1]
    const std::string causal = g_.op("LessOrEqual", {keys, queries});                                      // [seq, total]
    const std::string kept = g_.op("Unsqueeze", {g_.op("Cast", {"attention_mask"}, {{"to", int64_t(ElementType::Bool)}}),
                                                 "axes_1_2_3"});                                           // [b, 1, 1, 1, total]
    allowed_ = g_.op("And", {causal, kept});
  }

  std::string rotate(const std::string& x) {
    const std::string first = g_.op("Slice", {x, "first_start", "first_end", "axes_3"});
    const std::string second = g_.op("Slice", {x, "half_start", "half_end", "axes_3"});
    const std::string rotated = g_.op("Concat", {g_.op("Neg", {second}), first}, {{"axis", int64_t(3)}});
    return g_.op("Add", {g_.op("Mul", {x, cos_}), g_.op("Mul", {rotated, sin_})});
  }

  // [batch, seq, heads * head_dim] -> [batch, heads, seq, head_dim]
  std::string heads_first(const std::string& x, const std::string& shape) {
    return g_.op("Transpose", {g_.op("Reshape", {x, shape})}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  }

  std::string layer(int64_t l, const std::string& h) {
    const std::string n1 = rms_norm(h, vector(l, Role::AttnNorm));
    const std::string q = rotate(heads_first(linear(n1, l, Role::AttnQ), "shape_q"));
    const std::string k = rotate(heads_first(linear(n1, l, Role::AttnK), "shape_kv"));
    const std::string v = heads_first(linear(n1, l, Role::AttnV), "shape_kv");
    const std::string prefix = std::to_string(l) + ".";
    const std::string keys = g_.node("Concat", {"past_key_values." + prefix + "key", k}, {"present." + prefix + "key"},
                                     {{"axis", int64_t(2)}});
    const std::string values = g_.node("Concat", {"past_key_values." + prefix + "value", v},
                                       {"present." + prefix + "value"}, {{"axis", int64_t(2)}});
    // Grouped queries: [b, kv, group, seq, d] against each kv head's keys [b, kv, 1, total, d].
    const std::string q5 = g_.op("Reshape", {q, "shape_q_groups"});
    const std::string k5 = g_.op("Transpose", {g_.op("Unsqueeze", {keys, "axes_2"})},
                                 {{"perm", std::vector<int64_t>{0, 1, 2, 4, 3}}});
    const std::string scores = g_.op("Mul", {g_.op("MatMul", {q5, k5}), "attention_scale"});
    const std::string probs = g_.op("Softmax", {g_.op("Where", {allowed_, scores, "masked"})}, {{"axis", int64_t(-1)}});
    const std::string mixed = g_.op("MatMul", {probs, g_.op("Unsqueeze", {values, "axes_2"})});  // [b, kv, g, seq, d]
    const std::string merged = g_.op(
        "Reshape", {g_.op("Transpose", {g_.op("Reshape", {mixed, "shape_heads"})}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}}),
                    "shape_merged"});
    const std::string h1 = g_.op("Add", {h, linear(merged, l, Role::AttnO)});
    const std::string n2 = rms_norm(h1, vector(l, Role::MlpNorm));
    const std::string gate = linear(n2, l, Role::MlpGate), up = linear(n2, l, Role::MlpUp);
    const std::string act = g_.op("Mul", {g_.op("Mul", {gate, g_.op("Sigmoid", {gate})}), up});
    return g_.op("Add", {h1, linear(act, l, Role::MlpDown)});
  }

  const ModelConfig& c_;
  const RoleWeights& w_;
  GraphBuilder& g_;
  OnnxMatrixWriter& matrices_;
  int64_t positions_;
  std::string cos_, sin_, allowed_;
};

}  // namespace

Result<OnnxExportReport> export_onnx(const std::filesystem::path& model, const std::filesystem::path& out,
                                     const OnnxExportOptions& options) {
  if (is_gguf_path(model))
    return make_error(model.string() + ": ONNX export reads a Hugging Face folder (config.json and tokenizer files "
                      "travel with the graph); export the folder the .gguf came from");
  BRISK_TRY(require_empty_output(out));
  BRISK_ASSIGN(checkpoint, open_checkpoint(model));
  const ModelConfig& c = checkpoint.config;
  BRISK_TRY(check_exportable(c));
  const RoleWeights weights(c, checkpoint.store);
  GraphBuilder graph;
  const int64_t positions = options.max_positions > 0 ? options.max_positions : c.max_position;
  OnnxMatrixWriter matrices(graph, options.matrix_type, options.int4_group);
  LlamaGraph builder(c, weights, graph, matrices, positions);
  BRISK_TRY(builder.build());

  // transformers.js reads onnx/model<suffix>.onnx, the suffix naming the weights' form; Optimum's
  // ORTModelForCausalLM takes the same file through subfolder="onnx" and file_name.
  const std::filesystem::path file = std::filesystem::path("onnx") / onnx_file_name(matrices.matrices_by_type());
  std::error_code ec;
  std::filesystem::create_directories(out / "onnx", ec);
  if (ec) return make_error(out.string() + ": cannot create: " + ec.message());
  BRISK_TRY(copy_model_side_files(model, out, ConfigFile::Skip));
  // config.json as the source's, less what no longer applies: the graph holds its own weight forms.
  BRISK_ASSIGN(config, read_json_file(model / "config.json"));
  config.erase("quantization_config");
  config.erase("brisk_low_rank");
  BRISK_TRY(write_text_file(out / "config.json", config.dump(2) + "\n"));
  const bool external = graph.initializer_bytes() >= (uint64_t(1) << 31) - (uint64_t(64) << 20);
  BRISK_TRY(graph.write(out / file, "brisk_" + c.model_type, options.opset,
                        external ? options.external_threshold : std::numeric_limits<uint64_t>::max()));
  OnnxExportReport report;
  report.model_type = c.model_type;
  report.file = file.string();
  report.layers = c.n_layers;
  report.external_data = external;
  report.matrices_by_type = matrices.matrices_by_type();
  for (const auto& [name, t] : checkpoint.store.all()) report.parameters += t.tensor.numel();
  for (const std::filesystem::path& f : {out / file, out / (file.string() + "_data")})
    if (std::filesystem::exists(f)) report.bytes += std::filesystem::file_size(f);
  return report;
}

}  // namespace brisk
