#include "formats/model_folder.h"

#include "formats/sparse_checkpoint.h"

namespace brisk {

namespace fs = std::filesystem;

Status copy_model_side_files(const fs::path& in, const fs::path& out, ConfigFile config) {
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(in, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || e.path().extension() == ".safetensors" || name == "model.safetensors.index.json" ||
        (config == ConfigFile::Skip && name == "config.json"))
      continue;
    fs::copy_file(e.path(), out / name, fs::copy_options::overwrite_existing, ec);
    if (ec) return make_error("copying " + e.path().string() + " to " + out.string() + ": " + ec.message());
  }
  if (ec) return make_error("reading " + in.string() + ": " + ec.message());
  return ok_status();
}

Status require_empty_output(const fs::path& out) {
  std::error_code ec;
  if (fs::exists(out, ec) && (!fs::is_directory(out, ec) || !fs::is_empty(out, ec)))
    return make_error(out.string() + " exists and is not an empty folder");
  return ok_status();
}

Status require_float_weights(const Json& config, const WeightStore& store, const fs::path& in, const std::string& tool) {
  if (const auto q = config.find("quantization_config"); q != config.end() && is_sparse_only(*q))
    return make_error((in / "config.json").string() + ": model is stored sparse (quantization_config.sparsity_config); " +
                      tool + " the dense folder (brisk prune without --storage) instead");
  if (config.contains("quantization_config"))
    return make_error((in / "config.json").string() + ": model is already quantized (has quantization_config); " + tool +
                      " the original model instead");
  for (const auto& [name, stored] : store.all()) {
    const DType d = stored.tensor.dtype;
    if (d != DType::F32 && d != DType::F16 && d != DType::BF16)
      return make_error(stored.file + ": tensor '" + name + "' is " + std::string(dtype_name(d)) +
                        "; the model looks already quantized (" + tool + " the original model instead)");
  }
  return ok_status();
}

Status require_float_model(const Json& config, const WeightStore& store, const fs::path& in, const std::string& tool) {
  if (config.contains("brisk_low_rank"))
    return make_error((in / "config.json").string() + ": model is low-rank factored (has brisk_low_rank); " + tool +
                      " the model it was factored from instead");
  return require_float_weights(config, store, in, tool);
}

Status require_float_model(const fs::path& in, const std::string& tool) {
  BRISK_ASSIGN(config, read_json_file(in / "config.json"));
  BRISK_ASSIGN(store, WeightStore::open_dir(in));
  return require_float_model(config, store, in, tool);
}

fs::path folder_beside(const fs::path& out, const std::string& suffix) {
  const fs::path target = out.has_filename() ? out : out.parent_path();
  return target.parent_path() / ("." + target.filename().string() + suffix);
}

RemovedOnExit::~RemovedOnExit() {
  std::error_code ignored;
  if (!dir_.empty()) fs::remove_all(dir_, ignored);
}

}  // namespace brisk
