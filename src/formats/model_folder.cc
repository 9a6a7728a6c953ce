#include "formats/model_folder.h"

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

}  // namespace brisk
