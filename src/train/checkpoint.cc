#include "train/checkpoint.h"

#include <charconv>
#include <map>

#include "formats/safetensors.h"

namespace brisk::train {

namespace {

constexpr const char* kMomentM = ".adam_m";
constexpr const char* kMomentV = ".adam_v";

NamedTensor view(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values) {
  Tensor t;
  t.data = const_cast<float*>(values.data());  // written, not modified
  t.dtype = DType::F32;
  t.shape = shape;
  return {name, t};
}

// A whole number from the metadata (the seed is unsigned 64-bit, the rest signed).
template <class T>
Result<T> metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                          const std::string& file) {
  auto it = metadata.find(key);
  if (it == metadata.end()) return make_error(file + ": not a brisk training checkpoint (no '" + key + "' in its metadata)");
  T value{};
  const std::string& text = it->second;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size())
    return make_error(file + ": metadata '" + key + "' is not a whole number: '" + text + "'");
  return value;
}

}  // namespace

Status save_checkpoint(const std::filesystem::path& path, const TrainState& state) {
  std::vector<NamedTensor> tensors;
  for (const TrainState::Parameter& p : state.parameters) {
    tensors.push_back(view(p.name, p.shape, p.value));
    if (p.adam.m.empty()) continue;
    tensors.push_back(view(p.name + kMomentM, p.shape, p.adam.m));
    tensors.push_back(view(p.name + kMomentV, p.shape, p.adam.v));
  }
  const std::map<std::string, std::string> metadata = {
      {"format", "brisk-train"},          {"step", std::to_string(state.step)},
      {"epoch", std::to_string(state.epoch)}, {"window", std::to_string(state.window)},
      {"seed", std::to_string(state.seed)}};
  std::filesystem::path partial = path;
  partial += ".partial";
  BRISK_TRY(write_safetensors(partial, tensors, metadata));
  std::error_code error;
  std::filesystem::rename(partial, path, error);
  if (error) return make_error("cannot move " + partial.string() + " to " + path.string() + ": " + error.message());
  return ok_status();
}

Result<TrainState> load_checkpoint(const std::filesystem::path& path) {
  BRISK_ASSIGN(file, SafetensorsFile::open(path));
  const std::string where = path.string();
  const auto& metadata = file.metadata();
  if (auto f = metadata.find("format"); f == metadata.end() || f->second != "brisk-train")
    return make_error(where + ": not a brisk training checkpoint (metadata 'format' is not 'brisk-train')");
  TrainState state;
  BRISK_ASSIGN(step, metadata_number<int64_t>(metadata, "step", where));
  BRISK_ASSIGN(epoch, metadata_number<int64_t>(metadata, "epoch", where));
  BRISK_ASSIGN(window, metadata_number<int64_t>(metadata, "window", where));
  BRISK_ASSIGN(seed, metadata_number<uint64_t>(metadata, "seed", where));
  state.step = step;
  state.epoch = epoch;
  state.window = window;
  state.seed = seed;
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : file.tensors()) {
    if (t.tensor.dtype != DType::F32) return make_error(where + ": tensor '" + t.name + "' is not F32");
    by_name[t.name] = &t;
  }
  auto values = [](const NamedTensor& t) {
    const float* data = static_cast<const float*>(t.tensor.data);
    return std::vector<float>(data, data + t.tensor.numel());
  };
  auto ends_with = [](const std::string& s, const char* suffix) {
    const std::string x(suffix);
    return s.size() > x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  for (const NamedTensor& t : file.tensors()) {
    if (ends_with(t.name, kMomentM) || ends_with(t.name, kMomentV)) continue;
    TrainState::Parameter p{t.name, t.tensor.shape, values(t), {}};
    auto m = by_name.find(t.name + kMomentM), v = by_name.find(t.name + kMomentV);
    if ((m == by_name.end()) != (v == by_name.end()))
      return make_error(where + ": '" + t.name + "' has one AdamW moment without the other");
    if (m != by_name.end()) {
      if (m->second->tensor.shape != t.tensor.shape || v->second->tensor.shape != t.tensor.shape)
        return make_error(where + ": the AdamW moments of '" + t.name + "' have another shape than it");
      p.adam.m = values(*m->second);
      p.adam.v = values(*v->second);
    }
    state.parameters.push_back(std::move(p));
  }
  for (const auto& [name, t] : by_name)
    if ((ends_with(name, kMomentM) || ends_with(name, kMomentV)) &&
        !by_name.count(name.substr(0, name.size() - std::string(kMomentM).size())))
      return make_error(where + ": moment '" + name + "' belongs to no parameter");
  return state;
}

}  // namespace brisk::train
