// brisk inspect: the tensors of a model folder with shapes, dtypes, sparsity and N:M pattern.
#include <map>
#include <memory>
#include <vector>

#include "common.h"
#include "formats/gguf.h"
#include "formats/weight_store.h"
#include "models/gguf_model.h"
#include "models/model_config.h"

namespace brisk::cli {

namespace {

// "2:4" (then "4:8") when every group of that many consecutive inputs of every row of a matrix holds
// at most half non-zeros, else "": what sparse tensor cores (2:4) and kernels for wider groups
// read. `inputs_first`: stored [in, out] (GPT-2's Conv1D), so a row's inputs run down a column.
std::string nm_pattern(const std::vector<uint8_t>& zero, int64_t rows, int64_t cols, bool inputs_first) {
  const int64_t outputs = inputs_first ? cols : rows, inputs = inputs_first ? rows : cols;
  for (int64_t group : {4, 8}) {
    if (inputs % group != 0) continue;
    bool holds = true;
    for (int64_t o = 0; o < outputs && holds; ++o)
      for (int64_t g = 0; g < inputs && holds; g += group) {
        int64_t kept = 0;
        for (int64_t i = g; i < g + group; ++i) kept += !zero[size_t(inputs_first ? i * cols + o : o * cols + i)];
        holds = kept <= group / 2;
      }
    if (holds) return std::to_string(group / 2) + ":" + std::to_string(group);
  }
  return "";
}

// Which stored matrices hold their inputs first (Conv1D), from the folder's config when it parses.
std::map<std::string, bool> inputs_first_matrices(const std::string& model) {
  std::map<std::string, bool> out;
  auto json = read_json_file(std::filesystem::path(model) / "config.json");
  if (!json) return out;
  auto config = parse_model_config(json.value(), model);
  if (!config) return out;
  for (const TensorSpec& spec : config->arch->tensors(config.value()))
    out[spec.name] = spec.kind == TensorKind::TransposedMatrix;
  return out;
}

}  // namespace

Command add_inspect(CLI::App& app) {
  struct Flags {
    std::string model;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand("inspect", "List a model's tensors: name, shape, dtype, element count and\n"
                                                "sparsity (fraction of exact zeros)");
  add_model_option(sub, f->model, "Model folder or .gguf file");
  sub->add_flag("--json", f->json,
                "Print {\"params\", \"tensors\": [{\"name\", \"shape\", \"dtype\", \"numel\", \"sparsity\", \"pattern\"}]}\n"
                "(pattern: \"2:4\" or \"4:8\" when every group of inputs of a matrix keeps at most half, else null)");
  return {sub, [f]() {
    // A .gguf file shows as the Hugging Face tensors it maps to (models/gguf_model.h).
    auto open = [&]() -> Result<WeightStore> {
      if (!is_gguf_path(f->model)) return WeightStore::open_dir(f->model);
      BRISK_ASSIGN(gguf, open_gguf_model(f->model));
      return std::move(gguf.weights);
    };
    auto store = open();
    if (!store) return fail(store.error());
    Json tensors = Json::array();
    uint64_t params = 0;
    const std::map<std::string, bool> inputs_first =
        is_gguf_path(f->model) ? std::map<std::string, bool>{} : inputs_first_matrices(f->model);
    for (const auto& [name, stored] : store.value().all()) {
      const Tensor& t = stored.tensor;
      const size_t n = size_t(t.numel()), es = dtype_size(t.dtype);
      const auto* bytes = static_cast<const uint8_t*>(t.data);
      size_t zeros = 0;
      std::vector<uint8_t> zero_at(n);
      for (size_t i = 0; i < n; ++i) {
        bool zero = true;
        for (size_t b = 0; b < es && zero; ++b) zero = bytes[i * es + b] == 0;
        // -0.0 is a zero too: only the sign bit (top bit of the last byte, little-endian) set.
        if (!zero && (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16)) {
          zero = bytes[i * es + es - 1] == 0x80;
          for (size_t b = 0; b + 1 < es && zero; ++b) zero = bytes[i * es + b] == 0;
        }
        zeros += zero;
        zero_at[i] = zero;
      }
      params += n;
      std::string pattern;
      if (zeros > 0 && t.shape.size() == 2 && !is_block_dtype(t.dtype)) {
        auto it = inputs_first.find(name);
        pattern = nm_pattern(zero_at, t.shape[0], t.shape[1], it != inputs_first.end() && it->second);
      }
      tensors.push_back({{"name", name}, {"shape", t.shape}, {"dtype", dtype_name(t.dtype)}, {"numel", n},
                         {"sparsity", n ? double(zeros) / double(n) : 0.0},
                         {"pattern", pattern.empty() ? Json(nullptr) : Json(pattern)}});
    }
    if (f->json) {
      print_json({{"params", params}, {"tensors", tensors}});
    } else {
      for (const auto& t : tensors)
        std::printf("%-60s %-6s %-20s sparsity %.3f%s\n", t["name"].get<std::string>().c_str(),
                    t["dtype"].get<std::string>().c_str(), t["shape"].dump().c_str(), t["sparsity"].get<double>(),
                    t["pattern"].is_null() ? "" : (" " + t["pattern"].get<std::string>()).c_str());
      std::printf("%llu parameters in %s\n", (unsigned long long)params, store.value().describe().c_str());
    }
    return 0;
  }};
}

}  // namespace brisk::cli
