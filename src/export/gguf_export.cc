#include "export/gguf_export.h"

#include <algorithm>
#include <cstring>

#include "core/mapped_file.h"
#include "core/quant_blocks.h"
#include "formats/gguf.h"
#include "export/gguf_vocabulary.h"
#include "formats/gguf_writer.h"
#include "models/architecture.h"
#include "models/gguf_model.h"
#include "models/model.h"

namespace brisk {

namespace {

struct ExportType {
  const char* name;
  GgmlType type;
  uint32_t file_type;  // general.file_type: llama.cpp's llama_ftype for a file mostly of this type
  // For rows that are not whole blocks: the nearest type with smaller blocks (llama-quantize
  // falls back too; it has Q5_0 for Q4_K, which brisk does not write). F16 takes any row.
  GgmlType fallback;
};
// llama_ftype values from llama.h: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7,
// MOSTLY_Q4_K_S 14, MOSTLY_Q6_K 18, MOSTLY_BF16 32.
constexpr ExportType kExportTypes[] = {
    {"f32", GgmlType::F32, 0, GgmlType::F32},     {"f16", GgmlType::F16, 1, GgmlType::F16},
    {"bf16", GgmlType::BF16, 32, GgmlType::BF16}, {"q8_0", GgmlType::Q8_0, 7, GgmlType::F16},
    {"q4_0", GgmlType::Q4_0, 2, GgmlType::F16},   {"q4_k", GgmlType::Q4_K, 14, GgmlType::Q4_0},
    {"q6_k", GgmlType::Q6_K, 18, GgmlType::Q8_0},
};

const ExportType& export_type(GgmlType type) {
  for (const ExportType& t : kExportTypes)
    if (t.type == type) return t;
  BRISK_CHECK(false, "gguf export: type outside kExportTypes");
  return kExportTypes[0];
}

// How a stored (Hugging Face layout) tensor becomes its GGUF counterpart: the inverse of
// gguf_model.cc's Layout.
enum class Layout { AsIs, InterleaveQ, InterleaveK, Transpose, AddOffset };

struct PlannedTensor {
  const TensorSpec* spec;
  const StoredTensor* stored;
  std::string name;            // GGUF name
  std::vector<int64_t> shape;  // GGUF shape, row-major
  GgmlType type;
  Layout layout;
};

// The GGUF entry of the family for config.model_type.
Result<const GgufArchitecture*> gguf_architecture(const ModelConfig& c) {
  for (const GgufArchitecture& g : c.arch->gguf) {
    const bool alias = std::find(g.also_exports.begin(), g.also_exports.end(), c.model_type) != g.also_exports.end();
    if (g.model_type == c.model_type || alias) {
      if (!c.arch->gguf_metadata) break;
      return &g;
    }
  }
  return make_error("GGUF export of model_type '" + c.model_type + "' (family " + std::string(c.arch->family) +
                    ") is not supported yet");
}

// Row r of the Hugging Face layout (j * half + i within a head) goes to row 2i + j: llama.cpp's
// converter pairs the rotary halves.
void interleave_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t heads) {
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(dst + (h * head_dim + 2 * i + j) * cols, src + (h * head_dim + j * half + i) * cols,
                    size_t(cols) * sizeof(float));
}

// The values of a planned tensor in its GGUF layout, fp32.
std::vector<float> gguf_values(const PlannedTensor& t, const ModelConfig& c) {
  const Tensor& stored = t.stored->tensor;
  const int64_t cols = stored.rank() == 2 ? stored.shape[1] : stored.numel();
  const int64_t rows = stored.rank() == 2 ? stored.shape[0] : 1;
  std::vector<float> values = decode_tensor(stored);
  switch (t.layout) {
    case Layout::AsIs: break;
    case Layout::InterleaveQ:
    case Layout::InterleaveK: {
      std::vector<float> out(values.size());
      const int64_t n = stored.rank() == 2 ? rows : cols;  // a bias: one value per row
      interleave_rows(values.data(), out.data(), n, stored.rank() == 2 ? cols : 1,
                      t.layout == Layout::InterleaveQ ? c.n_heads : c.n_kv_heads);
      values = std::move(out);
      break;
    }
    case Layout::Transpose: {
      std::vector<float> out(values.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < cols; ++k) out[size_t(k * rows + r)] = values[size_t(r * cols + k)];
      values = std::move(out);
      break;
    }
    case Layout::AddOffset:
      for (float& v : values) v += t.spec->load_offset;
      break;
  }
  return values;
}

// The dtypes the source's matrices are stored in, with counts.
std::map<DType, int64_t> source_dtypes(const ModelConfig& c, const WeightStore& store) {
  std::map<DType, int64_t> counts;
  for (const TensorSpec& spec : c.arch->tensors(c))
    if (spec.is_matrix())
      if (const StoredTensor* s = store.find(spec.name)) ++counts[s->tensor.dtype];
  return counts;
}

}  // namespace

GgmlType nearest_gguf_type(DType stored) {
  switch (stored) {
    case DType::F32: return GgmlType::F32;
    case DType::F16: return GgmlType::F16;
    case DType::BF16: return GgmlType::BF16;
    case DType::Q8: case DType::Q8A8: case DType::F8: case DType::F8_E4M3: return GgmlType::Q8_0;
    case DType::Q4: case DType::NF4: case DType::LOG4: return GgmlType::Q4_K;
    default: return GgmlType::F32;
  }
}

Result<GgmlType> parse_gguf_export_type(const std::string& name) {
  for (const ExportType& t : kExportTypes)
    if (name == t.name) return t.type;
  return make_error("unknown GGUF type '" + name + "' (expected one of " + gguf_export_type_names() + ")");
}

std::string gguf_export_type_names() {
  std::string out;
  for (const ExportType& t : kExportTypes) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

Result<GgufExportReport> export_gguf(const std::filesystem::path& model, const std::filesystem::path& out,
                                     const GgufExportOptions& options,
                                     const std::function<void(int64_t, int64_t)>& progress) {
  if (path_exists(out)) return make_error(out.string() + ": already exists (brisk export never overwrites)");
  BRISK_ASSIGN(checkpoint, open_checkpoint(model));
  const ModelConfig& c = checkpoint.config;
  if (!c.low_rank.empty())
    return make_error(model.string() + ": a low-rank factored model (brisk_low_rank) cannot be exported to GGUF: "
                      "llama.cpp has no two-factor linear layer");
  BRISK_ASSIGN(arch, gguf_architecture(c));

  GgufExportReport report;
  report.architecture = std::string(arch->name);
  // Without a type asked for, each matrix takes the nearest to its own stored dtype (a w4 model's
  // 8-bit head stays 8-bit, its bf16 embedding bf16); the file is labelled by its layers' type.
  const std::map<DType, int64_t> dtypes = source_dtypes(c, checkpoint.store);
  DType most = DType::F32;
  for (const auto& [dtype, n] : dtypes) {
    report.source_format += (report.source_format.empty() ? "" : ", ") + std::string(dtype_name(dtype)) + " x" +
                            std::to_string(n);
    if (n > (dtypes.count(most) ? dtypes.at(most) : 0)) most = dtype;
  }
  const GgmlType file_type = options.matrix_type.value_or(nearest_gguf_type(most));
  report.matrix_type = options.matrix_type ? ggml_type_traits(file_type).name
                                           : "auto (" + std::string(ggml_type_traits(file_type).name) + ")";
  GgufWriter writer;
  writer.set_string("general.architecture", report.architecture);
  const std::filesystem::path source = model.filename().empty() ? model.parent_path() : model;  // "dir/"
  writer.set_string("general.name", is_gguf_path(source) ? source.stem().string() : source.filename().string());
  writer.set_u32("general.file_type", export_type(file_type).file_type);
  if (ggml_type_traits(file_type).block_elems > 1) writer.set_u32("general.quantization_version", 2);
  BRISK_TRY(c.arch->gguf_metadata(c, *arch, writer));
  BRISK_ASSIGN(vocabulary, write_gguf_vocabulary(model, options.chat_template, writer));
  report.tokenizer = vocabulary.model;
  report.pre_tokenizer = vocabulary.pre;

  std::vector<PlannedTensor> plan;
  const std::vector<TensorSpec> specs = c.arch->tensors(c);
  for (const TensorSpec& spec : specs) {
    const StoredTensor* stored = checkpoint.store.find(spec.name);
    if (!stored) {
      if (spec.presence == Presence::Optional) continue;
      return make_error(model.string() + ": tensor '" + spec.name + "' is missing");
    }
    PlannedTensor t{&spec, stored, gguf_tensor_name(spec, arch), stored->tensor.shape, GgmlType::F32, Layout::AsIs};
    if (arch->rotary_rows_interleaved && spec.role == Role::AttnQ) t.layout = Layout::InterleaveQ;
    if (arch->rotary_rows_interleaved && spec.role == Role::AttnK) t.layout = Layout::InterleaveK;
    if (spec.kind == TensorKind::TransposedMatrix && t.shape.size() == 2) {
      t.layout = Layout::Transpose;
      t.shape = {t.shape[1], t.shape[0]};
    }
    if (arch->norms_hold_offset && spec.load_offset != 0.0f) t.layout = Layout::AddOffset;
    if (t.shape.size() == 2) {  // matrices take the requested type, or the nearest one their rows hold
      const GgmlType wanted = options.matrix_type.value_or(nearest_gguf_type(stored->tensor.dtype));
      auto holds = [&](GgmlType type) { return t.shape[1] % ggml_type_traits(type).block_elems == 0; };
      t.type = wanted;
      while (!holds(t.type)) t.type = export_type(t.type).fallback;
      if (t.type != wanted) report.fallbacks[ggml_type_traits(t.type).name].push_back(t.name);
    }
    BRISK_TRY(writer.add_tensor(t.name, t.shape, t.type));
    ++report.tensors_by_type[ggml_type_traits(t.type).name];
    report.parameters += stored->tensor.numel();
    plan.push_back(std::move(t));
  }

  int64_t done = 0;
  BRISK_TRY(writer.write(out, [&](size_t i, std::vector<uint8_t>& bytes) -> Status {
    const PlannedTensor& t = plan[i];
    const std::vector<float> values = gguf_values(t, c);
    const GgmlTypeTraits& traits = ggml_type_traits(t.type);
    traits.quantize(values.data(), int64_t(values.size()) / traits.block_elems, bytes.data());
    if (progress) progress(++done, int64_t(plan.size()));
    return ok_status();
  }));
  std::error_code ec;
  report.bytes = std::filesystem::file_size(out, ec);
  return report;
}

}  // namespace brisk
