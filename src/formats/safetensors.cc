#include "formats/safetensors.h"

#include <cstring>
#include <limits>

#include "formats/json_file.h"

namespace brisk {

namespace {

// Safetensors caps headers at 100 MB; anything bigger is corrupt, not large.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

Result<NamedTensor> parse_entry(const std::string& where, const std::string& name, const Json& entry,
                                const uint8_t* data, uint64_t data_bytes) {
  const std::string at = where + ": tensor '" + name + "'";
  if (!entry.is_object()) return make_error(at + ": entry is not an object");
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string())
    return make_error(at + ": missing or non-string 'dtype'");
  if (shape_it == entry.end() || !shape_it->is_array())
    return make_error(at + ": missing or non-array 'shape'");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
    return make_error(at + ": 'data_offsets' must be [begin, end]");
  auto dtype = dtype_from_name(dtype_it->get<std::string>());
  if (!dtype) return make_error(at + ": unsupported dtype '" + dtype_it->get<std::string>() + "'");

  NamedTensor t;
  t.name = name;
  t.tensor.dtype = *dtype;
  uint64_t numel = 1;
  for (const auto& d : *shape_it) {
    if (!d.is_number_unsigned()) return make_error(at + ": shape entries must be non-negative integers");
    uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v)
      return make_error(at + ": shape overflows");
    numel *= v;
    t.tensor.shape.push_back(int64_t(v));
  }
  const auto& off = *offsets_it;
  if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    return make_error(at + ": data_offsets must be non-negative integers");
  uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end || end > data_bytes)
    return make_error(at + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                      "] lie outside the " + std::to_string(data_bytes) +
                      " data bytes (file truncated?)");
  if (end - begin != numel * dtype_size(*dtype))
    return make_error(at + ": shape " + shape_string(t.tensor.shape) + " of " +
                      std::string(dtype_name(*dtype)) + " needs " +
                      std::to_string(numel * dtype_size(*dtype)) + " bytes but data_offsets span " +
                      std::to_string(end - begin));
  t.tensor.data = const_cast<uint8_t*>(data + begin);
  return t;
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string where = path.string();
  BRISK_ASSIGN(file, MappedFile::open(path));
  if (file->size() < 8) return make_error(where + ": too short to be safetensors (no header length)");
  uint64_t header_len;
  std::memcpy(&header_len, file->data(), 8);  // little-endian on every machine we build for
  if (header_len > kMaxHeaderBytes || header_len > file->size() - 8)
    return make_error(where + ": header length " + std::to_string(header_len) +
                      " exceeds the file size (truncated or not safetensors)");
  std::string_view header(reinterpret_cast<const char*>(file->data() + 8), header_len);
  BRISK_ASSIGN(json, parse_json(header, where + " (safetensors header)"));
  if (!json.is_object()) return make_error(where + ": safetensors header is not a JSON object");

  SafetensorsFile out;
  const uint8_t* data = file->data() + 8 + header_len;
  uint64_t data_bytes = file->size() - 8 - header_len;
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return make_error(where + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) out.metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    BRISK_ASSIGN(t, parse_entry(where, it.key(), *it, data, data_bytes));
    out.tensors_.push_back(std::move(t));
  }
  out.file_ = std::move(file);
  return out;
}

}  // namespace brisk
