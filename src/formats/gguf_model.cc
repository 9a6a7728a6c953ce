#include "formats/gguf_model.h"

#include <cstring>
#include <regex>

namespace brisk {

namespace {

bool has_tensor(const GgufFile& f, const std::string& name) { return f.find_tensor(name) != nullptr; }

// Reads {arch}.* keys into the config.json fields parse_model_config understands, so one
// validator (positive sizes, head divisibility, rope scaling) serves both formats.
Result<Json> config_json(const GgufFile& f, const std::string& arch) {
  const std::string a = arch + ".";
  Json j;
  j["model_type"] = arch;
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2)
    return make_error(f.path().string() + ": tensor 'token_embd.weight' missing or not a matrix");
  j["vocab_size"] = embd->ne[1];  // the model's rows; the token list may be shorter or padded
  BRISK_ASSIGN(hidden, f.integer(a + "embedding_length"));
  BRISK_ASSIGN(ff, f.integer(a + "feed_forward_length"));
  BRISK_ASSIGN(layers, f.integer(a + "block_count"));
  BRISK_ASSIGN(heads, f.integer(a + "attention.head_count"));
  BRISK_ASSIGN(kv_heads, f.optional_integer(a + "attention.head_count_kv"));
  BRISK_ASSIGN(context, f.integer(a + "context_length"));
  BRISK_ASSIGN(bos, f.optional_integer("tokenizer.ggml.bos_token_id"));
  BRISK_ASSIGN(eos, f.optional_integer("tokenizer.ggml.eos_token_id"));
  if (bos) j["bos_token_id"] = *bos;
  if (eos) j["eos_token_id"] = *eos;
  const bool tied = !has_tensor(f, "output.weight");

  if (arch == "gpt2") {
    BRISK_ASSIGN(eps, f.number(a + "attention.layer_norm_epsilon"));
    j.update({{"n_embd", hidden}, {"n_inner", ff}, {"n_layer", layers}, {"n_head", heads},
              {"n_positions", context}, {"layer_norm_epsilon", eps}, {"tie_word_embeddings", true}});
    return j;
  }
  BRISK_ASSIGN(eps, f.number(a + "attention.layer_norm_rms_epsilon"));
  BRISK_ASSIGN(theta, f.optional_number(a + "rope.freq_base"));
  BRISK_ASSIGN(key_length, f.optional_integer(a + "attention.key_length"));
  BRISK_ASSIGN(value_length, f.optional_integer(a + "attention.value_length"));
  BRISK_ASSIGN(rope_dims, f.optional_integer(a + "rope.dimension_count"));
  const int64_t head_dim = key_length.value_or(heads > 0 ? hidden / heads : 0);
  if (value_length && *value_length != head_dim)
    return make_error(f.path().string() + ": attention.key_length and value_length differ; brisk needs equal head sizes");
  if (rope_dims && *rope_dims != head_dim)
    return make_error(f.path().string() + ": metadata '" + a + "rope.dimension_count' = " + std::to_string(*rope_dims) +
                      " rotates part of each head; brisk supports full rotary only (head size " + std::to_string(head_dim) + ")");
  j.update({{"hidden_size", hidden}, {"intermediate_size", ff}, {"num_hidden_layers", layers},
            {"num_attention_heads", heads}, {"num_key_value_heads", kv_heads.value_or(heads)},
            {"head_dim", head_dim}, {"max_position_embeddings", context}, {"rms_norm_eps", eps},
            {"rope_theta", theta.value_or(10000.0)}, {"tie_word_embeddings", tied},
            {"attention_bias", arch == "llama" && has_tensor(f, "blk.0.attn_q.bias")},
            {"mlp_bias", has_tensor(f, "blk.0.ffn_up.bias")}});

  BRISK_ASSIGN(scaling, f.optional_string(a + "rope.scaling.type"));
  BRISK_ASSIGN(factor, f.optional_number(a + "rope.scaling.factor"));
  BRISK_ASSIGN(old_linear, f.optional_number(a + "rope.scale_linear"));  // pre-2024 files
  if (scaling == "linear" || (!scaling && old_linear && *old_linear != 1.0)) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", factor.value_or(old_linear.value_or(1.0))}};
  } else if (scaling && *scaling != "none") {
    return make_error(f.path().string() + ": metadata '" + a + "rope.scaling.type' = '" + *scaling +
                      "' is not supported (supported: none, linear)");
  }
  return j;
}

// How a GGUF tensor becomes its Hugging Face counterpart.
enum class Layout {
  AsIs,
  UnpermuteQ,  // llama.cpp interleaved the rotary halves of each Q head: put them back
  UnpermuteK,  // the same over the K heads
  Transpose,   // GPT-2: GGUF holds [out, in], Hugging Face's Conv1D [in, out]
};

struct Mapping {
  std::string hf_name;
  Layout layout = Layout::AsIs;
};

// GGUF tensor names (llama.cpp's constants.py MODEL_TENSOR names) to Hugging Face names.
std::optional<Mapping> map_name(const std::string& arch, const std::string& name) {
  static const std::regex kBlock(R"(blk\.(\d+)\.(\w+)\.(weight|bias))");
  const bool gpt2 = arch == "gpt2";
  const bool permuted = arch == "llama";  // qwen2's converter keeps the Hugging Face row order
  std::smatch m;
  if (std::regex_match(name, m, kBlock)) {
    const std::string part = m[2], kind = m[3];
    const bool weight = kind == "weight";
    if (gpt2) {
      const std::string p = "transformer.h." + std::string(m[1]) + ".";
      const Layout matrix = weight ? Layout::Transpose : Layout::AsIs;
      if (part == "attn_norm") return Mapping{p + "ln_1." + kind};
      if (part == "attn_qkv") return Mapping{p + "attn.c_attn." + kind, matrix};
      if (part == "attn_output") return Mapping{p + "attn.c_proj." + kind, matrix};
      if (part == "ffn_norm") return Mapping{p + "ln_2." + kind};
      if (part == "ffn_up") return Mapping{p + "mlp.c_fc." + kind, matrix};
      if (part == "ffn_down") return Mapping{p + "mlp.c_proj." + kind, matrix};
      return std::nullopt;
    }
    const std::string p = "model.layers." + std::string(m[1]) + ".";
    if (part == "attn_norm") return Mapping{p + "input_layernorm." + kind};
    if (part == "attn_q") return Mapping{p + "self_attn.q_proj." + kind, permuted ? Layout::UnpermuteQ : Layout::AsIs};
    if (part == "attn_k") return Mapping{p + "self_attn.k_proj." + kind, permuted ? Layout::UnpermuteK : Layout::AsIs};
    if (part == "attn_v") return Mapping{p + "self_attn.v_proj." + kind};
    if (part == "attn_output") return Mapping{p + "self_attn.o_proj." + kind};
    if (part == "ffn_norm") return Mapping{p + "post_attention_layernorm." + kind};
    if (part == "ffn_gate") return Mapping{p + "mlp.gate_proj." + kind};
    if (part == "ffn_up") return Mapping{p + "mlp.up_proj." + kind};
    if (part == "ffn_down") return Mapping{p + "mlp.down_proj." + kind};
    return std::nullopt;
  }
  if (gpt2) {
    if (name == "token_embd.weight") return Mapping{"transformer.wte.weight"};
    if (name == "position_embd.weight") return Mapping{"transformer.wpe.weight"};
    if (name == "output_norm.weight") return Mapping{"transformer.ln_f.weight"};
    if (name == "output_norm.bias") return Mapping{"transformer.ln_f.bias"};
  } else {
    if (name == "token_embd.weight") return Mapping{"model.embed_tokens.weight"};
    if (name == "output_norm.weight") return Mapping{"model.norm.weight"};
  }
  if (name == "output.weight") return Mapping{"lm_head.weight"};
  return std::nullopt;
}

// Rows of one head arrive as (half index i, pair member j) -> row 2i + j; Hugging Face wants
// row j * half + i. Works on whole rows of any element size (matrices and bias vectors alike).
void unpermute_rows(const uint8_t* src, uint8_t* dst, int64_t rows, size_t row_bytes, int64_t heads) {
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(dst + size_t(h * head_dim + j * half + i) * row_bytes,
                    src + size_t(h * head_dim + 2 * i + j) * row_bytes, row_bytes);
}

std::optional<DType> plain_dtype(GgmlType t) {
  if (t == GgmlType::F32) return DType::F32;
  if (t == GgmlType::F16) return DType::F16;
  if (t == GgmlType::BF16) return DType::BF16;
  return std::nullopt;
}

}  // namespace

Result<ModelConfig> gguf_model_config(const GgufFile& f) {
  BRISK_ASSIGN(arch, f.string("general.architecture"));
  if (arch != "llama" && arch != "qwen2" && arch != "gpt2")
    return make_error(f.path().string() + ": metadata 'general.architecture' = '" + arch +
                      "' is not supported (supported: llama, qwen2, gpt2)");
  BRISK_ASSIGN(json, config_json(f, arch));
  return parse_model_config(json, f.path().string() + " (GGUF metadata)");
}

Result<WeightStore> gguf_weight_store(std::shared_ptr<const GgufFile> file, const ModelConfig& config) {
  const std::string where = file->path().string();
  std::map<std::string, StoredTensor> tensors;
  std::vector<std::shared_ptr<const void>> owners{file};
  for (const GgufTensorInfo& t : file->tensors()) {
    if (t.name == "rope_freqs.weight") {  // Llama 3.1's rope scaling as per-frequency divisors
      std::vector<float> factors(size_t(t.numel()));
      BRISK_TRY(file->dequantize(t, factors.data()));
      for (float x : factors)
        if (x != 1.0f)
          return make_error(where + ": tensor 'rope_freqs.weight' scales rotary frequencies (Llama 3.1 style); not supported yet");
      continue;
    }
    const auto mapping = map_name(config.model_type, t.name);
    if (!mapping) return make_error(where + ": unexpected tensor '" + t.name + "' for architecture '" + config.model_type + "'");
    if (t.ne.size() > 2) return make_error(where + ": tensor '" + t.name + "' has " + std::to_string(t.ne.size()) + " dimensions (weights have 1 or 2)");

    Tensor out;
    out.shape = t.shape();
    const auto dtype = plain_dtype(t.type);
    if (dtype && mapping->layout == Layout::AsIs) {  // used in place from the mapping
      out.dtype = *dtype;
      out.data = const_cast<uint8_t*>(t.data);
      tensors[mapping->hf_name] = StoredTensor{out, where};
      continue;
    }
    // Everything else is decoded (or copied) into memory the store owns.
    out.dtype = dtype.value_or(DType::F32);
    const size_t es = dtype_size(out.dtype), n = size_t(t.numel());
    std::shared_ptr<uint8_t[]> decoded(new uint8_t[n * es]);
    if (dtype) std::memcpy(decoded.get(), t.data, n * es);
    else BRISK_TRY(file->dequantize(t, reinterpret_cast<float*>(decoded.get())));
    const int64_t rows = out.shape[0], cols = out.rank() == 2 ? out.shape[1] : 1;
    const size_t row_bytes = size_t(cols) * es;
    if (mapping->layout == Layout::UnpermuteQ || mapping->layout == Layout::UnpermuteK) {
      const int64_t heads = mapping->layout == Layout::UnpermuteQ ? config.n_heads : config.n_kv_heads;
      if (rows != heads * config.head_dim)
        return make_error(where + ": tensor '" + t.name + "' has " + std::to_string(rows) + " rows, expected " +
                          std::to_string(heads * config.head_dim) + " (heads x head size)");
      std::shared_ptr<uint8_t[]> permuted(new uint8_t[n * es]);
      unpermute_rows(decoded.get(), permuted.get(), rows, row_bytes, heads);
      decoded = std::move(permuted);
    } else if (mapping->layout == Layout::Transpose && out.rank() == 2) {
      std::shared_ptr<uint8_t[]> transposed(new uint8_t[n * es]);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          std::memcpy(transposed.get() + size_t(c * rows + r) * es, decoded.get() + size_t(r * cols + c) * es, es);
      decoded = std::move(transposed);
      out.shape = {cols, rows};
    }
    out.data = decoded.get();
    owners.push_back(std::move(decoded));
    tensors[mapping->hf_name] = StoredTensor{out, where};
  }
  return WeightStore::from_tensors(std::move(tensors), file->path().filename().string() + " (GGUF)", std::move(owners));
}

Result<GgufModel> open_gguf_model(const std::filesystem::path& path) {
  BRISK_ASSIGN(file, GgufFile::open(path));
  BRISK_ASSIGN(config, gguf_model_config(*file));
  BRISK_ASSIGN(weights, gguf_weight_store(file, config));
  return GgufModel{std::move(config), std::move(weights)};
}

}  // namespace brisk
