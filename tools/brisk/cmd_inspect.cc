// brisk inspect: the tensors of a model folder with shapes, dtypes and sparsity.
#include <memory>

#include "common.h"
#include "formats/gguf.h"
#include "formats/weight_store.h"
#include "models/gguf_model.h"

namespace brisk::cli {

Command add_inspect(CLI::App& app) {
  struct Flags {
    std::string model;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand("inspect", "List a model's tensors: name, shape, dtype, element count and\n"
                                                "sparsity (fraction of exact zeros)");
  add_model_option(sub, f->model, "Model folder or .gguf file");
  sub->add_flag("--json", f->json, "Print {\"params\", \"tensors\": [...]}");
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
    for (const auto& [name, stored] : store.value().all()) {
      const Tensor& t = stored.tensor;
      const size_t n = size_t(t.numel()), es = dtype_size(t.dtype);
      const auto* bytes = static_cast<const uint8_t*>(t.data);
      size_t zeros = 0;
      for (size_t i = 0; i < n; ++i) {
        bool zero = true;
        for (size_t b = 0; b < es && zero; ++b) zero = bytes[i * es + b] == 0;
        // -0.0 is a zero too: only the sign bit (top bit of the last byte, little-endian) set.
        if (!zero && (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16)) {
          zero = bytes[i * es + es - 1] == 0x80;
          for (size_t b = 0; b + 1 < es && zero; ++b) zero = bytes[i * es + b] == 0;
        }
        zeros += zero;
      }
      params += n;
      tensors.push_back({{"name", name}, {"shape", t.shape}, {"dtype", dtype_name(t.dtype)}, {"numel", n},
                         {"sparsity", n ? double(zeros) / double(n) : 0.0}});
    }
    if (f->json) {
      print_json({{"params", params}, {"tensors", tensors}});
    } else {
      for (const auto& t : tensors)
        std::printf("%-60s %-6s %-20s sparsity %.3f\n", t["name"].get<std::string>().c_str(),
                    t["dtype"].get<std::string>().c_str(), t["shape"].dump().c_str(), t["sparsity"].get<double>());
      std::printf("%llu parameters in %s\n", (unsigned long long)params, store.value().describe().c_str());
    }
    return 0;
  }};
}

}  // namespace brisk::cli
