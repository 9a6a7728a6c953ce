#include "models/gguf_model.h"

#include <cstring>
#include <map>

#include "formats/gguf_writer.h"

namespace brisk {

namespace {

// How a GGUF tensor becomes its Hugging Face counterpart.
enum class Layout {
  AsIs,
  UnpermuteQ,      // llama.cpp interleaved the rotary halves of each Q head: put them back
  UnpermuteK,      // the same over the K heads
  Transpose,       // Conv1D: GGUF holds [out, in], Hugging Face [in, out]
  SubtractOffset,  // the file holds w + load_offset (Gemma's 1 + w norms): store w
};

struct Mapping {
  const TensorSpec* spec = nullptr;
  Layout layout = Layout::AsIs;
};

// Every tensor the architecture declares, by its GGUF name.
std::map<std::string, Mapping> gguf_names(const std::vector<TensorSpec>& specs, const GgufArchitecture& arch) {
  std::map<std::string, Mapping> out;
  for (const TensorSpec& spec : specs) {
    Layout layout = Layout::AsIs;
    if (arch.rotary_rows_interleaved && spec.role == Role::AttnQ) layout = Layout::UnpermuteQ;
    if (arch.rotary_rows_interleaved && spec.role == Role::AttnK) layout = Layout::UnpermuteK;
    if (spec.kind == TensorKind::TransposedMatrix) layout = Layout::Transpose;
    if (arch.norms_hold_offset && spec.load_offset != 0.0f) layout = Layout::SubtractOffset;
    out[gguf_tensor_name(spec, &arch)] = Mapping{&spec, layout};
  }
  return out;
}

// The family declaration and GGUF entry for general.architecture.
std::pair<const Architecture*, const GgufArchitecture*> find_gguf_architecture(const std::string& name) {
  for (const Architecture* a : architectures())
    for (const GgufArchitecture& g : a->gguf)
      if (g.name == name) return {a, &g};
  return {nullptr, nullptr};
}

std::string known_gguf_architectures() {
  std::string out;
  for (const Architecture* a : architectures())
    for (const GgufArchitecture& g : a->gguf) out += (out.empty() ? "" : ", ") + std::string(g.name);
  return out;
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

namespace {
// The keys of GgufCommon, after "<arch>.": read and written through these names only.
constexpr const char* kEmbeddingLength = "embedding_length";
constexpr const char* kFeedForwardLength = "feed_forward_length";
constexpr const char* kBlockCount = "block_count";
constexpr const char* kHeadCount = "attention.head_count";
constexpr const char* kHeadCountKv = "attention.head_count_kv";
constexpr const char* kContextLength = "context_length";
}  // namespace

Result<GgufCommon> read_gguf_common(const GgufFile& f, const GgufArchitecture& arch) {
  const std::string a = std::string(arch.name) + ".";
  GgufCommon c;
  c.json["model_type"] = arch.model_type;
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2)
    return make_error(f.path().string() + ": tensor 'token_embd.weight' missing or not a matrix");
  c.json["vocab_size"] = embd->ne[1];  // the model's rows; the token list may be shorter or padded
  BRISK_ASSIGN(hidden, f.integer(a + kEmbeddingLength));
  BRISK_ASSIGN(ff, f.integer(a + kFeedForwardLength));
  BRISK_ASSIGN(layers, f.integer(a + kBlockCount));
  BRISK_ASSIGN(heads, f.integer(a + kHeadCount));
  BRISK_ASSIGN(kv_heads, f.optional_integer(a + kHeadCountKv));
  BRISK_ASSIGN(context, f.integer(a + kContextLength));
  BRISK_ASSIGN(bos, f.optional_integer("tokenizer.ggml.bos_token_id"));
  BRISK_ASSIGN(eos, f.optional_integer("tokenizer.ggml.eos_token_id"));
  if (bos) c.json["bos_token_id"] = *bos;
  if (eos) c.json["eos_token_id"] = *eos;
  c.hidden = hidden;
  c.ff = ff;
  c.layers = layers;
  c.heads = heads;
  c.kv_heads = kv_heads.value_or(heads);
  c.context = context;
  return c;
}

void write_gguf_common(const ModelConfig& c, const GgufArchitecture& arch, GgufWriter& out) {
  const std::string a = std::string(arch.name) + ".";
  out.set_u32(a + kContextLength, uint32_t(c.max_position));
  out.set_u32(a + kEmbeddingLength, uint32_t(c.hidden_size));
  out.set_u32(a + kFeedForwardLength, uint32_t(c.intermediate_size));
  out.set_u32(a + kBlockCount, uint32_t(c.n_layers));
  out.set_u32(a + kHeadCount, uint32_t(c.n_heads));
  if (*c.arch->shape_keys.kv_heads) out.set_u32(a + kHeadCountKv, uint32_t(c.n_kv_heads));  // families with grouped keys
}

std::string gguf_tensor_name(const TensorSpec& spec, const GgufArchitecture* arch) {
  const std::string part = spec.part == Part::Weight ? ".weight" : ".bias";
  std::string role = role_gguf_name(spec.role);
  if (arch)
    for (const GgufRoleName& r : arch->role_names)
      if (r.role == spec.role) role = r.gguf;
  return spec.layer == kNoLayer ? role + part : "blk." + std::to_string(spec.layer) + "." + role + part;
}

Result<ModelConfig> gguf_model_config(const GgufFile& f) {
  BRISK_ASSIGN(name, f.string("general.architecture"));
  const auto [family, arch] = find_gguf_architecture(name);
  if (!family)
    return make_error(f.path().string() + ": metadata 'general.architecture' = '" + name +
                      "' is not supported (supported: " + known_gguf_architectures() + ")");
  BRISK_ASSIGN(json, family->gguf_config(f, *arch));
  return parse_model_config(json, f.path().string() + " (GGUF metadata)");
}

Result<WeightStore> gguf_weight_store(std::shared_ptr<const GgufFile> file, const ModelConfig& config) {
  const std::string where = file->path().string();
  std::map<std::string, StoredTensor> tensors;
  std::vector<std::shared_ptr<const void>> owners{file};
  BRISK_ASSIGN(arch_name, file->string("general.architecture"));
  const GgufArchitecture* arch = find_gguf_architecture(arch_name).second;
  if (!arch) return make_error(where + ": metadata 'general.architecture' = '" + arch_name + "' is not supported");
  const std::vector<TensorSpec> specs = config.arch->tensors(config);
  const std::map<std::string, Mapping> names = gguf_names(specs, *arch);
  for (const auto& [name, mapping] : names)
    if (mapping.spec->presence == Presence::Required && !file->find_tensor(name))
      return make_error(where + ": tensor '" + name + "' (" + mapping.spec->name + ") is missing");
  for (const GgufTensorInfo& t : file->tensors()) {
    bool config_tensor = false;  // read by the family's gguf_config already
    for (std::string_view c : arch->config_tensors) config_tensor = config_tensor || t.name == c;
    if (config_tensor) continue;
    auto found = names.find(t.name);
    if (found == names.end())
      return make_error(where + ": unexpected tensor '" + t.name + "' for architecture '" + config.model_type + "'");
    const Mapping* mapping = &found->second;
    const std::string& hf_name = mapping->spec->name;
    if (t.ne.size() > 2) return make_error(where + ": tensor '" + t.name + "' has " + std::to_string(t.ne.size()) + " dimensions (weights have 1 or 2)");

    Tensor out;
    out.shape = t.shape();
    const auto dtype = plain_dtype(t.type);
    if (dtype && mapping->layout == Layout::AsIs) {  // used in place from the mapping
      out.dtype = *dtype;
      out.data = const_cast<uint8_t*>(t.data);
      tensors[hf_name] = StoredTensor{out, where};
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
    } else if (mapping->layout == Layout::SubtractOffset) {
      // In fp32: bind() adds the offset back, which gives the file's value exactly when it is
      // at least 0.5 (g - 1 is then exact), otherwise within an ulp of 1.
      if (out.dtype != DType::F32) {
        std::shared_ptr<uint8_t[]> widened(new uint8_t[n * 4]);
        for (size_t i = 0; i < n; ++i) {
          const float x = load_as_f32(decoded.get(), out.dtype, i);
          std::memcpy(widened.get() + 4 * i, &x, 4);
        }
        decoded = std::move(widened);
        out.dtype = DType::F32;
      }
      float* values = reinterpret_cast<float*>(decoded.get());
      for (size_t i = 0; i < n; ++i) values[i] -= mapping->spec->load_offset;
    } else if (mapping->layout == Layout::Transpose && out.rank() == 2) {  // biases stay as they are
      std::shared_ptr<uint8_t[]> transposed(new uint8_t[n * es]);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          std::memcpy(transposed.get() + size_t(c * rows + r) * es, decoded.get() + size_t(r * cols + c) * es, es);
      decoded = std::move(transposed);
      out.shape = {cols, rows};
    }
    out.data = decoded.get();
    owners.push_back(std::move(decoded));
    tensors[hf_name] = StoredTensor{out, where};
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
