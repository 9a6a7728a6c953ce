#include <algorithm>
#include <cstring>
#include <fstream>

#include "formats/json_file.h"
#include "formats/safetensors.h"

namespace brisk {

Status write_safetensors(const std::filesystem::path& path, const std::vector<NamedTensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<const NamedTensor*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });

  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto* t : sorted) {
    uint64_t bytes = t->tensor.nbytes();
    header[t->name] = {{"dtype", dtype_name(t->tensor.dtype)},
                       {"shape", t->tensor.shape},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the spec allows

  // Write to a temporary name and rename: an interrupted write never leaves a corrupt model.
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error(tmp.string() + ": cannot open for writing");
    uint64_t len = text.size();
    out.write(reinterpret_cast<const char*>(&len), 8);
    out.write(text.data(), std::streamsize(text.size()));
    for (const auto* t : sorted)
      out.write(static_cast<const char*>(t->tensor.data), std::streamsize(t->tensor.nbytes()));
    if (!out) {
      out.close();
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);  // a full disk must not leave a partial file behind
      return make_error(tmp.string() + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error(path.string() + ": cannot rename from " + tmp.string() + ": " + ec.message());
  return ok_status();
}

}  // namespace brisk
