#include "export/onnx_export.h"

#include <cmath>
#include <limits>

#include "export/onnx_encoder.h"
#include "export/onnx_graph.h"
#include "export/onnx_matrices.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "formats/model_folder.h"
#include "formats/onnx_writer.h"
#include "models/architecture.h"
#include "models/model.h"

namespace brisk {

namespace {

using onnx::ElementType;
using onnx::GraphBuilder;
using onnx_export::GraphParts;
using onnx_export::RoleWeights;

// What this version writes; everything else is named in the error.
Status check_exportable(const ModelConfig& c) {
  const std::string_view family = c.arch->family;
  if (family != "llama" && family != "gpt2" && family != "bert")
    return make_error("ONNX export of model_type '" + c.model_type + "' (family " + std::string(family) +
                      ") is not supported yet (the Llama family, GPT-2 and BERT are)");
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

// A causal decoder with past_key_values in Optimum's layout: the Llama family (RMSNorm, rotary
// positions, SwiGLU, separate q/k/v) or GPT-2 (LayerNorm, learned positions, GELU, fused qkv).
class DecoderGraph {
 public:
  DecoderGraph(GraphParts& parts, int64_t positions) : p_(parts), c_(parts.config()), g_(parts.graph()),
                                                       positions_(positions), gpt2_(c_.arch->family == "gpt2") {}

  Status build() {
    // The roles this graph reads; a family storing others (Phi-3's fused qkv and gate_up) is refused.
    const std::vector<Role> matrices = gpt2_ ? std::vector<Role>{Role::AttnQkv, Role::AttnO, Role::MlpUp, Role::MlpDown}
                                             : std::vector<Role>{Role::AttnQ, Role::AttnK, Role::AttnV, Role::AttnO,
                                                                 Role::MlpGate, Role::MlpUp, Role::MlpDown};
    std::vector<Role> layer_roles = matrices;
    layer_roles.insert(layer_roles.end(), {Role::AttnNorm, Role::MlpNorm});
    std::vector<Role> model_roles = {Role::TokenEmbed, Role::FinalNorm};
    if (gpt2_) model_roles.push_back(Role::PositionEmbed);
    BRISK_TRY(onnx_export::require_roles(c_, p_.weights(), model_roles, layer_roles));
    BRISK_TRY(p_.check_matrices({Role::Head}, matrices));
    io();
    const std::string embed = p_.matrices().float_table("embed_tokens", p_.weights().tensor(kNoLayer, Role::TokenEmbed));
    std::string h = g_.op("Gather", {embed, "input_ids"}, {{"axis", int64_t(0)}});
    if (gpt2_) {
      const std::string wpe = p_.matrices().float_table("embed_positions", p_.weights().tensor(kNoLayer, Role::PositionEmbed));
      h = g_.op("Add", {h, g_.op("Gather", {wpe, "position_ids"}, {{"axis", int64_t(0)}})});
    } else {
      rotary_tables();
    }
    causal_mask();
    for (int64_t l = 0; l < c_.n_layers; ++l) h = layer(l, h);
    const std::string normed = norm(h, kNoLayer, Role::FinalNorm);
    std::string logits;
    if (p_.weights().has(kNoLayer, Role::Head)) {
      logits = p_.linear(normed, kNoLayer, Role::Head);
    } else {  // tied: the embedding table, transposed
      const std::string head = g_.op("Transpose", {embed}, {{"perm", std::vector<int64_t>{1, 0}}});
      logits = g_.op("MatMul", {normed, head});
    }
    g_.node("Identity", {logits}, {"logits"});
    return ok_status();
  }

 private:
  void io() {
    const std::vector<onnx::Dim> ids_dims = {"batch_size", "sequence_length"};
    g_.add_input("input_ids", ElementType::Int64, ids_dims);
    g_.add_input("attention_mask", ElementType::Int64, {"batch_size", "total_sequence_length"});
    g_.add_input("position_ids", ElementType::Int64, ids_dims);
    for (int64_t l = 0; l < c_.n_layers; ++l)
      for (const char* kv : {"key", "value"})
        g_.add_input("past_key_values." + std::to_string(l) + "." + kv, ElementType::Float,
                     {"batch_size", c_.n_kv_heads, "past_sequence_length", c_.head_dim});
    g_.add_output("logits", ElementType::Float, {"batch_size", "sequence_length", c_.vocab_size});
    for (int64_t l = 0; l < c_.n_layers; ++l)
      for (const char* kv : {"key", "value"})
        g_.add_output("present." + std::to_string(l) + "." + kv, ElementType::Float,
                      {"batch_size", c_.n_kv_heads, "total_sequence_length", c_.head_dim});
  }

  std::string norm(const std::string& x, int64_t layer, Role role) {
    return gpt2_ ? p_.layer_norm(x, layer, role) : p_.rms_norm(x, layer, role);
  }

  // cos and sin of every position's angles, [positions, head_dim] (halves repeated, as
  // transformers' rotary embedding), gathered by position_ids into [batch, 1, seq, head_dim].
  void rotary_tables() {
    const std::vector<float> inv = c_.rope_inv_freq(positions_);
    const int64_t Dh = c_.head_dim, half = Dh / 2;
    std::vector<float> cos(size_t(positions_ * Dh)), sin(cos.size());
    for (int64_t pos = 0; pos < positions_; ++pos)
      for (int64_t i = 0; i < half; ++i) {
        const float angle = float(pos) * inv[size_t(i)];
        for (int64_t j : {i, i + half}) {
          cos[size_t(pos * Dh + j)] = std::cos(angle);
          sin[size_t(pos * Dh + j)] = std::sin(angle);
        }
      }
    g_.add_floats("rope_cos", {positions_, Dh}, cos);
    g_.add_floats("rope_sin", {positions_, Dh}, sin);
    const std::string axis1 = p_.int64s({1});
    cos_ = g_.op("Unsqueeze", {g_.op("Gather", {"rope_cos", "position_ids"}, {{"axis", int64_t(0)}}), axis1});
    sin_ = g_.op("Unsqueeze", {g_.op("Gather", {"rope_sin", "position_ids"}, {{"axis", int64_t(0)}}), axis1});
  }

  // allowed [batch, 1, 1, seq, total]: key j is seen by query i when j <= past + i and the mask
  // keeps j (padding excluded).
  void causal_mask() {
    const std::string axis0 = p_.int64s({0});
    const std::string total = g_.op("Squeeze", {g_.op("Shape", {"attention_mask"}, {{"start", int64_t(1)}}), axis0});
    const std::string seq = g_.op("Squeeze", {g_.op("Shape", {"input_ids"}, {{"start", int64_t(1)}}), axis0});
    const std::string past = g_.op("Sub", {total, seq});
    const std::string zero = p_.int64_scalar(0), one = p_.int64_scalar(1);
    const std::string keys = g_.op("Unsqueeze", {g_.op("Range", {zero, total, one}), axis0});             // [1, total]
    const std::string queries = g_.op("Unsqueeze", {g_.op("Range", {past, total, one}), p_.int64s({1})});  // [seq, 1]
    const std::string causal = g_.op("LessOrEqual", {keys, queries});                                     // [seq, total]
    const std::string kept = g_.op("Unsqueeze", {g_.op("Cast", {"attention_mask"}, {{"to", int64_t(ElementType::Bool)}}),
                                                 p_.int64s({1, 2, 3})});                                  // [b, 1, 1, 1, total]
    allowed_ = g_.op("And", {causal, kept});
  }

  std::string rotate(const std::string& x) {
    const int64_t Dh = c_.head_dim;
    const std::string axis3 = p_.int64s({3});
    const std::string first = g_.op("Slice", {x, p_.int64s({0}), p_.int64s({Dh / 2}), axis3});
    const std::string second = g_.op("Slice", {x, p_.int64s({Dh / 2}), p_.int64s({Dh}), axis3});
    const std::string rotated = g_.op("Concat", {g_.op("Neg", {second}), first}, {{"axis", int64_t(3)}});
    return g_.op("Add", {g_.op("Mul", {x, cos_}), g_.op("Mul", {rotated, sin_})});
  }

  std::string layer(int64_t l, const std::string& h) {
    const std::string n1 = norm(h, l, Role::AttnNorm);
    std::string q, k, v;
    if (gpt2_) {  // c_attn's output is q | k | v
      const int64_t a = c_.n_heads * c_.head_dim;
      const std::string prefix = "l" + std::to_string(l) + "_";
      g_.node("Split", {p_.linear(n1, l, Role::AttnQkv), p_.int64s({a, a, a})}, {prefix + "q", prefix + "k", prefix + "v"},
              {{"axis", int64_t(-1)}});
      q = p_.heads_first(prefix + "q", c_.n_heads);
      k = p_.heads_first(prefix + "k", c_.n_kv_heads);
      v = p_.heads_first(prefix + "v", c_.n_kv_heads);
    } else {
      q = rotate(p_.heads_first(p_.linear(n1, l, Role::AttnQ), c_.n_heads));
      k = rotate(p_.heads_first(p_.linear(n1, l, Role::AttnK), c_.n_kv_heads));
      v = p_.heads_first(p_.linear(n1, l, Role::AttnV), c_.n_kv_heads);
    }
    const std::string cache = std::to_string(l) + ".";
    const std::string keys = g_.node("Concat", {"past_key_values." + cache + "key", k}, {"present." + cache + "key"},
                                     {{"axis", int64_t(2)}});
    const std::string values = g_.node("Concat", {"past_key_values." + cache + "value", v}, {"present." + cache + "value"},
                                       {{"axis", int64_t(2)}});
    const std::string h1 = g_.op("Add", {h, p_.linear(p_.attention(q, keys, values, allowed_), l, Role::AttnO)});
    const std::string n2 = norm(h1, l, Role::MlpNorm);
    std::string act;
    if (gpt2_) {
      act = p_.gelu_tanh(p_.linear(n2, l, Role::MlpUp));
    } else {
      const std::string gate = p_.linear(n2, l, Role::MlpGate), up = p_.linear(n2, l, Role::MlpUp);
      act = g_.op("Mul", {g_.op("Mul", {gate, g_.op("Sigmoid", {gate})}), up});
    }
    return g_.op("Add", {h1, p_.linear(act, l, Role::MlpDown)});
  }

  GraphParts& p_;
  const ModelConfig& c_;
  GraphBuilder& g_;
  int64_t positions_;
  bool gpt2_;
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
  OnnxMatrixWriter matrices(graph, options.matrix_type, options.int4_group);
  GraphParts parts(c, weights, graph, matrices);
  if (c.arch->family == "bert") {
    BRISK_TRY(onnx_export::build_encoder(parts));
  } else {
    DecoderGraph decoder(parts, options.max_positions > 0 ? options.max_positions : c.max_position);
    BRISK_TRY(decoder.build());
  }

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
