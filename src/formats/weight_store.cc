#include "formats/weight_store.h"

#include <set>

#include "core/mapped_file.h"
#include "formats/json_file.h"

namespace brisk {

namespace fs = std::filesystem;

const StoredTensor* WeightStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::string WeightStore::describe() const { return description_; }

WeightStore WeightStore::from_tensors(std::map<std::string, StoredTensor> tensors, std::string description,
                                      std::vector<std::shared_ptr<const void>> owners) {
  WeightStore store;
  store.tensors_ = std::move(tensors);
  store.description_ = std::move(description);
  store.owners_ = std::move(owners);
  return store;
}

void WeightStore::replace(const std::vector<std::string>& parts, const std::string& name, StoredTensor tensor,
                          std::shared_ptr<const void> owner) {
  for (const auto& p : parts) tensors_.erase(p);
  tensors_[name] = std::move(tensor);
  owners_.push_back(std::move(owner));
}

void WeightStore::select(const std::map<std::string, std::string>& kept) {
  std::map<std::string, StoredTensor> selected;
  for (const auto& [from, to] : kept)
    if (auto it = tensors_.find(from); it != tensors_.end()) selected[to] = it->second;
  tensors_ = std::move(selected);
}

Result<WeightStore> WeightStore::open_dir(const fs::path& dir) {
  WeightStore store;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";

  std::vector<std::string> shard_names;
  std::map<std::string, std::string> index_map;  // tensor -> shard, when sharded
  if (path_exists(index)) {
    BRISK_ASSIGN(json, read_json_file(index));
    auto wm = json.find("weight_map");
    if (!json.is_object() || wm == json.end() || !wm->is_object())
      return make_error(index.string() + ": missing 'weight_map' object");
    std::set<std::string> seen;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) return make_error(index.string() + ": weight_map['" + it.key() + "'] is not a file name");
      std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos || shard == "..")
        return make_error(index.string() + ": shard name '" + shard + "' must be a plain file name");
      index_map[it.key()] = shard;
      if (seen.insert(shard).second) shard_names.push_back(shard);
    }
    store.description_ = std::to_string(shard_names.size()) + " shards of " + index.filename().string();
  } else if (path_exists(single)) {
    shard_names.push_back(single.filename().string());
    store.description_ = single.filename().string();
  } else {
    if (path_exists(dir / "pytorch_model.bin"))
      return make_error(dir.string() + ": only pytorch_model.bin found; brisk reads safetensors (convert with transformers' save_pretrained(safe_serialization=True))");
    return make_error(dir.string() + ": no model.safetensors or model.safetensors.index.json");
  }

  for (const auto& name : shard_names) {
    BRISK_ASSIGN(file, SafetensorsFile::open(dir / name));
    for (const auto& t : file.tensors()) {
      if (store.tensors_.count(t.name))
        return make_error((dir / name).string() + ": tensor '" + t.name + "' also appears in " +
                          store.tensors_[t.name].file);
      store.tensors_[t.name] = StoredTensor{t.tensor, (dir / name).string()};
    }
    store.files_.push_back(std::move(file));
  }
  for (const auto& [tensor, shard] : index_map) {
    auto it = store.tensors_.find(tensor);
    if (it == store.tensors_.end() || fs::path(it->second.file).filename() != shard)
      return make_error(index.string() + ": tensor '" + tensor + "' is mapped to " + shard +
                        " but that file does not contain it");
  }
  return store;
}

}  // namespace brisk
