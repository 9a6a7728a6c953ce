#include "compress/quantize_model.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "backends/cpu/cpu_backend.h"
#include "core/mapped_file.h"
#include "core/quant_blocks.h"
#include "core/thread_pool.h"
#include "formats/model_folder.h"
#include "formats/quantized_checkpoint.h"
#include "formats/weight_store.h"
#include "models/model.h"

namespace brisk {

namespace fs = std::filesystem;

namespace {

bool is_quantizable(TensorKind kind) { return kind == TensorKind::Matrix || kind == TensorKind::TransposedMatrix; }

// A stored matrix as fp32 [out, in] (GPT-2's Conv1D [in, out] transposed).
std::vector<float> matrix_as_f32(const Tensor& t, TensorKind kind, ThreadPool& pool) {
  const int64_t rows = t.dim(0), cols = t.dim(1);
  std::vector<float> out(static_cast<size_t>(rows * cols));
  if (kind == TensorKind::TransposedMatrix) {  // stored [in, out]: output row c is stored column c
    pool.parallel_for(cols, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c)
        for (int64_t r = 0; r < rows; ++r) out[size_t(c * rows + r)] = load_as_f32(t.data, t.dtype, size_t(r * cols + c));
    });
    return out;
  }
  const size_t row = t.nbytes() / size_t(rows);
  pool.parallel_for(rows, [&](int64_t begin, int64_t end) {
    decode_rows(static_cast<const uint8_t*>(t.data) + size_t(begin) * row, t.dtype, end - begin, cols, out.data() + begin * cols);
  });
  return out;
}

OwnedTensor owned_f32(const std::string& name, const std::vector<float>& values, std::vector<int64_t> shape) {
  OwnedTensor t{name, DType::F32, std::move(shape), std::vector<uint8_t>(values.size() * sizeof(float))};
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

bool same_layout(const QuantizedLayout& a, const QuantizedLayout& b) {
  return a.runtime == b.runtime && a.group == b.group && a.symmetry == b.symmetry;
}

}  // namespace

QuantizedLayout layout_of(const QuantSpec& spec) {
  QuantizedLayout layout{runtime_dtype(spec.scheme), spec.group, spec.symmetry};
  if (quant_traits(layout.runtime)->per_channel) layout.group = 0;
  return layout;
}

Result<HeadPolicy> parse_head_policy(std::string_view name) {
  if (name == "auto") return HeadPolicy::Auto;
  if (name == "keep") return HeadPolicy::Keep;
  if (name == "same") return HeadPolicy::Same;
  if (name == "w8") return HeadPolicy::W8;
  return make_error("unknown head policy '" + std::string(name) + "' (auto, keep, same, w8)");
}

std::optional<QuantSpec> head_spec(HeadPolicy policy, const QuantSpec& body) {
  if (policy == HeadPolicy::Keep) return std::nullopt;
  QuantSpec w8;
  w8.scheme = QuantScheme::W8;
  w8.symmetry = Symmetry::Symmetric;
  if (policy == HeadPolicy::W8) return w8;
  if (policy == HeadPolicy::Same) return body;
  return quant_traits(runtime_dtype(body.scheme))->bits == 8 ? body : w8;
}

Result<QuantizeModelReport> quantize_model(const QuantizeModelOptions& o,
                                           const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  BRISK_TRY(validate_quant_spec(o.spec));
  if (!is_directory_path(o.in)) return make_error(o.in.string() + ": not a model folder");
  BRISK_ASSIGN(config_json, read_json_file(o.in / "config.json"));
  BRISK_ASSIGN(config, parse_model_config(config_json, (o.in / "config.json").string()));
  BRISK_ASSIGN(store, WeightStore::open_dir(o.in));
  BRISK_TRY(require_float_weights(config_json, store, o.in, "quantize"));  // a low-rank model's factors too
  std::error_code ec;
  if (path_exists(o.out) && !fs::is_empty(o.out, ec))
    return make_error(o.out.string() + ": output folder exists and is not empty");

  // The architecture's own tensor list names every matrix, its kind and role (GUIDE rule 2).
  struct Item {
    TensorSpec spec;
    bool head;
  };
  std::vector<Item> items;
  for (const TensorSpec& spec : config.arch->tensors(config)) items.push_back({spec, spec.role == Role::Head});

  ThreadPool pool(o.threads);
  const QuantizedLayout layout = layout_of(o.spec);
  const std::optional<QuantSpec> head = head_spec(o.head, o.spec);
  QuantizeModelReport report;
  std::vector<OwnedTensor> owned;
  std::vector<NamedTensor> passthrough;
  int64_t total = 0, done = 0;
  // Quantized modules stored unlike the body (the head under Auto, a recipe's choices).
  std::vector<std::pair<std::string, QuantizedLayout>> other_layouts;
  for (const Item& it : items) total += is_quantizable(it.spec.kind);
  for (const Item& it : items) {
    const StoredTensor* stored = store.find(it.spec.name);
    if (!stored) continue;  // optional tensors; load checks the rest
    report.bytes_in += stored->tensor.nbytes();
    std::optional<QuantSpec> chosen_spec = it.head ? head : std::optional<QuantSpec>(o.spec);
    if (o.recipe)
      if (auto r = o.recipe->find(it.spec.module); r != o.recipe->end()) chosen_spec = r->second;
    if (chosen_spec) BRISK_TRY(validate_quant_spec(*chosen_spec));
    const bool quantize = is_quantizable(it.spec.kind) && chosen_spec.has_value();
    const QuantSpec spec = chosen_spec.value_or(o.spec);
    const std::vector<float>* changed = nullptr;
    if (o.overrides) {
      auto v = o.overrides->values.find(it.spec.name);
      if (v != o.overrides->values.end()) changed = &v->second;
    }
    if (!quantize && changed && it.spec.kind == TensorKind::Vector) {  // a folded norm weight or bias
      std::vector<float> stored_values = *changed;  // runtime values; the file holds them less the offset
      for (float& v : stored_values) v -= it.spec.load_offset;
      OwnedTensor t = owned_f32(it.spec.name, stored_values, stored->tensor.shape);
      report.bytes_out += t.bytes.size();
      owned.push_back(std::move(t));
      continue;
    }
    if (!quantize) {
      if (is_quantizable(it.spec.kind)) report.kept.push_back(it.spec.module);
      const Tensor& t = stored->tensor;
      if (o.kept_dtype && t.dtype == DType::F32 && *o.kept_dtype != DType::F32) {
        OwnedTensor converted{it.spec.name, *o.kept_dtype, t.shape,
                              encode_floats(static_cast<const float*>(t.data), size_t(t.numel()), *o.kept_dtype)};
        report.bytes_out += converted.bytes.size();
        owned.push_back(std::move(converted));
        continue;
      }
      passthrough.push_back({it.spec.name, t});
      report.bytes_out += t.nbytes();
      continue;
    }
    const bool transposed = it.spec.kind == TensorKind::TransposedMatrix;
    const int64_t rows = stored->tensor.dim(transposed ? 1 : 0), cols = stored->tensor.dim(transposed ? 0 : 1);
    const QuantizedMatrix* chosen = nullptr;
    if (o.overrides && !it.head) {  // calibrated methods choose the codes of the layers' matrices only
      auto m = o.overrides->matrices.find(it.spec.name);
      if (m != o.overrides->matrices.end()) chosen = &m->second;
    }
    std::vector<float> w = chosen || changed ? std::vector<float>() : matrix_as_f32(stored->tensor, it.spec.kind, pool);
    if (!w.empty() && o.before_quantize) BRISK_TRY(o.before_quantize(it.spec.name, w, rows, cols));
    BRISK_ASSIGN(q, chosen ? Result<QuantizedMatrix>(*chosen)
                           : quantize_matrix(changed ? changed->data() : w.data(), rows, cols, spec, it.spec.name,
                                             &pool));
    if (it.head) report.head_scheme = std::string(quant_scheme_name(spec.scheme));
    if (!same_layout(layout_of(spec), layout)) other_layouts.emplace_back(it.spec.module, layout_of(spec));
    for (auto& t : quantized_disk_tensors(it.spec.name, q.tensor, layout_of(spec), &pool)) {
      report.bytes_out += t.bytes.size();
      owned.push_back(std::move(t));
    }
    ++report.quantized;
    if (progress) progress(++done, total);
  }

  // Everything goes into a staging folder beside the output, renamed into place once complete: a
  // killed or failed run (a full disk) leaves no folder that loads without its side files, and
  // nothing that blocks the retry (a stale staging folder of the same name is replaced).
  const fs::path target = o.out.has_filename() ? o.out : o.out.parent_path();  // "-o out/" too
  const fs::path staging = folder_beside(o.out, ".partial");
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return make_error(staging.string() + ": cannot create: " + ec.message());
  RemovedOnExit cleanup(staging);
  std::vector<NamedTensor> tensors = passthrough;
  for (const auto& t : owned) tensors.push_back(t.view());
  BRISK_TRY(write_safetensors(staging / "model.safetensors", tensors, {{"format", "pt"}}));
  // The body's group targets every linear layer; modules stored otherwise get groups that name
  // them, one per layout (a name outranks the class).
  std::vector<QuantizedGroup> groups = {{{"Linear"}, layout}};
  for (const auto& [module, other] : other_layouts) {
    auto g = std::find_if(groups.begin() + 1, groups.end(), [&](const QuantizedGroup& q) { return same_layout(q.layout, other); });
    if (g == groups.end()) groups.push_back({{module}, other});
    else g->targets.push_back(module);
  }
  config_json["quantization_config"] = quantization_config_json(groups, report.kept);
  BRISK_TRY(write_text_file(staging / "config.json", config_json.dump(2)));
  BRISK_TRY(copy_model_side_files(o.in, staging, ConfigFile::Skip));
  if (path_exists(target)) fs::remove(target, ec);  // the empty folder checked above
  fs::rename(staging, target, ec);
  if (ec) return make_error(target.string() + ": cannot move the finished model into place from " + staging.string() + ": " + ec.message());
  cleanup.release();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace brisk
