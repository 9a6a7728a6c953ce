#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

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
    const uint64_t v = d.get<uint64_t>();
    // The byte count must fit too (F32 [2^62] wrapped to 0 bytes and passed): checked below.
    if (v > uint64_t(std::numeric_limits<int64_t>::max()) ||
        (v != 0 && numel > std::numeric_limits<uint64_t>::max() / v))
      return make_error(at + ": shape entry " + std::to_string(t.tensor.shape.size()) + " (" + std::to_string(v) +
                        ") overflows the element count");
    numel *= v;
    t.tensor.shape.push_back(int64_t(v));
  }
  if (numel > std::numeric_limits<uint64_t>::max() / dtype_size(*dtype))
    return make_error(at + ": shape " + shape_string(t.tensor.shape) + " of " + std::string(dtype_name(*dtype)) +
                      " overflows a 64-bit byte count");
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

// As the reference implementation requires: the tensors' byte ranges, sorted, tile the data
// region exactly -- no gap, no overlap or aliasing, nothing after the last one. A header length
// that is off (so the region starts early or late) fails here too.
Status check_tiling(const std::string& where, std::vector<std::pair<uint64_t, uint64_t>> ranges,
                    uint64_t data_bytes) {
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    if (begin != covered)
      return make_error(where + ": tensor data_offsets do not tile the data region: " +
                        (begin < covered ? "bytes " + std::to_string(begin) + ".." + std::to_string(covered) +
                                               " are claimed by two tensors"
                                         : "bytes " + std::to_string(covered) + ".." + std::to_string(begin) +
                                               " belong to no tensor"));
    covered = end;
  }
  if (covered != data_bytes)
    return make_error(where + ": the tensors end at data byte " + std::to_string(covered) +
                      " but the data region holds " + std::to_string(data_bytes) +
                      " bytes (wrong header length or trailing bytes)");
  return ok_status();
}

// nlohmann keeps the last of repeated keys; the reference rejects a header that names a tensor twice.
Status check_unique_names(const std::string& where, std::string_view header) {
  std::set<std::string> seen;
  std::string repeated;
  const auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && !seen.insert(parsed.get<std::string>()).second &&
        repeated.empty())
      repeated = parsed.get<std::string>();
    return true;
  };
  (void)Json::parse(header, on_event, /*allow_exceptions=*/false);
  if (!repeated.empty()) return make_error(where + ": the header names tensor '" + repeated + "' twice");
  return ok_status();
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
  BRISK_TRY(check_unique_names(where, header));

  SafetensorsFile out;
  const uint8_t* data = file->data() + 8 + header_len;
  uint64_t data_bytes = file->size() - 8 - header_len;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // each tensor's [begin, end) in the data region
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return make_error(where + ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) out.metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    BRISK_ASSIGN(t, parse_entry(where, it.key(), *it, data, data_bytes));
    const uint64_t begin = uint64_t(static_cast<const uint8_t*>(t.tensor.data) - data);
    ranges.emplace_back(begin, begin + t.tensor.nbytes());
    out.tensors_.push_back(std::move(t));
  }
  BRISK_TRY(check_tiling(where, std::move(ranges), data_bytes));
  out.file_ = std::move(file);
  return out;
}

}  // namespace brisk
