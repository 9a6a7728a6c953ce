#include "train/student_init.h"

#include <charconv>
#include <cmath>
#include <map>
#include <tuple>

#include "core/dtype.h"
#include "core/splitmix64.h"
#include "formats/json_file.h"
#include "formats/model_folder.h"
#include "formats/safetensors.h"
#include "formats/weight_store.h"
#include "models/architecture.h"
#include "models/model_config.h"

namespace brisk::train {

namespace fs = std::filesystem;

namespace {

// transformers' default initializer_range for Llama-family configs.
constexpr double kInitStd = 0.02;

Result<int64_t> whole_number(std::string_view text, const std::string& what) {
  int64_t v = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (error != std::errc() || end != text.data() + text.size() || v < 0)
    return make_error(what + ": '" + std::string(text) + "' is not a whole number");
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == sep) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  return parts;
}

// N(0, std) by Box-Muller on SplitMix64: the same weights for a seed on every machine.
struct Normal {
  SplitMix64 rng;
  double next(double std) {
    const double u1 = (double(rng.next() >> 11) + 1.0) / 9007199254740993.0;  // (0, 1]
    const double u2 = double(rng.next() >> 11) / 9007199254740992.0;
    return std * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

using SpecKey = std::tuple<int64_t, Role, Part>;

}  // namespace

Result<StudentShape> parse_student_shape(const std::string& text, const std::string& flag) {
  StudentShape s;
  std::map<std::string_view, int64_t*> fields = {{"layers", &s.layers},     {"hidden", &s.hidden}, {"heads", &s.heads},
                                                 {"kv_heads", &s.kv_heads}, {"ffn", &s.ffn}};
  std::map<std::string_view, bool> seen;
  for (std::string_view item : split(text, ',')) {
    const size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    auto it = fields.find(key);
    if (eq == std::string_view::npos || (it == fields.end() && key != "arch"))
      return make_error(flag + ": '" + std::string(item) + "' is not one of layers=, hidden=, heads=, kv_heads=, ffn=, arch=");
    if (seen[key]) return make_error(flag + ": '" + std::string(key) + "' given twice");
    seen[key] = true;
    if (key == "arch") {
      s.arch = std::string(item.substr(eq + 1));
      if (s.arch != "llama" && s.arch != "gpt2") return make_error(flag + ": arch must be llama or gpt2, not '" + s.arch + "'");
      continue;
    }
    BRISK_ASSIGN(v, whole_number(item.substr(eq + 1), flag + " " + std::string(key)));
    if (v == 0 || v > (int64_t(1) << 20)) return make_error(flag + ": " + std::string(key) + " out of range");
    *it->second = v;
  }
  return s;
}

Result<std::vector<int64_t>> parse_layer_list(const std::string& text) {
  std::vector<int64_t> layers;
  for (std::string_view item : split(text, ',')) {
    BRISK_ASSIGN(v, whole_number(item, "--init-from-teacher"));
    layers.push_back(v);
  }
  return layers;
}

Status write_student(const StudentOptions& o) {
  std::error_code ec;
  if (fs::exists(o.out) && !fs::is_empty(o.out)) return make_error(o.out.string() + " is not empty");
  BRISK_ASSIGN(teacher_json, read_json_file(o.teacher / "config.json"));
  BRISK_ASSIGN(teacher, parse_model_config(teacher_json, (o.teacher / "config.json").string()));
  const ShapeKeys& keys = teacher.arch->shape_keys;
  if (!*keys.layers)
    return make_error("new models are llama, qwen2 or gpt2 models; the base is '" + teacher.model_type + "'");
  StudentShape s = o.shape;
  if (!s.arch.empty() && s.arch != teacher.arch->family)
    return make_error("arch=" + s.arch + ": the base model (" + o.teacher.string() + ") is a " +
                      std::string(teacher.arch->family) + " model; a new model takes the base's config and tokenizer, so its family too");
  if (!o.from_teacher_layers.empty()) {
    if (s.layers != 0 && s.layers != int64_t(o.from_teacher_layers.size()))
      return make_error("--init-from-teacher names " + std::to_string(o.from_teacher_layers.size()) +
                        " layers but the student has " + std::to_string(s.layers));
    s.layers = int64_t(o.from_teacher_layers.size());
    for (int64_t l : o.from_teacher_layers)
      if (l >= teacher.n_layers)
        return make_error("--init-from-teacher: the teacher has no layer " + std::to_string(l) + " (it has " +
                          std::to_string(teacher.n_layers) + ")");
  }
  if (s.layers == 0) s.layers = teacher.n_layers;
  if (s.hidden == 0) s.hidden = teacher.hidden_size;
  if (s.heads == 0) s.heads = teacher.n_heads;
  if (s.kv_heads == 0) s.kv_heads = teacher.n_kv_heads;
  if (s.ffn == 0) s.ffn = teacher.intermediate_size;
  if (!*keys.kv_heads && o.shape.kv_heads != 0 && o.shape.kv_heads != s.heads)
    return make_error("a " + std::string(teacher.arch->family) + " model has no grouped kv heads: kv_heads must equal heads");
  if (!*keys.kv_heads) s.kv_heads = s.heads;
  if (s.hidden % s.heads != 0 || s.heads % s.kv_heads != 0)
    return make_error("new shape: hidden must be a multiple of heads, and heads of kv_heads");

  // The shape through the family's keys; parsing the result checks the rest (RoPE's even heads).
  Json config = teacher_json;
  config[keys.layers] = s.layers;
  config[keys.hidden] = s.hidden;
  config[keys.heads] = s.heads;
  if (*keys.kv_heads) config[keys.kv_heads] = s.kv_heads;
  config[keys.ffn] = s.ffn;
  if (*keys.head_dim) config[keys.head_dim] = s.hidden / s.heads;
  for (const char* key : {"dtype", "torch_dtype"})
    if (config.contains(key)) config[key] = "float32";
  BRISK_ASSIGN(student, parse_model_config(config, (o.out / "config.json").string()));

  // Teacher tensors by (layer, role, part), read through its store when copying layers.
  std::map<SpecKey, std::string> teacher_names;
  WeightStore store;
  if (!o.from_teacher_layers.empty()) {
    for (const TensorSpec& t : teacher.arch->tensors(teacher)) teacher_names[{t.layer, t.role, t.part}] = t.name;
    BRISK_ASSIGN(opened, WeightStore::open_dir(o.teacher));
    store = std::move(opened);
  }
  Normal normal{SplitMix64{o.seed * 0x9E3779B97F4A7C15ull + 0x1234567ull}};
  std::vector<std::vector<float>> values;
  std::vector<NamedTensor> tensors;
  const std::vector<TensorSpec> specs = student.arch->tensors(student);
  values.reserve(specs.size());
  for (const TensorSpec& spec : specs) {
    if (spec.presence == Presence::Optional && spec.role == Role::Head && student.tie_word_embeddings) continue;
    int64_t numel = 1;
    for (int64_t d : spec.shape) numel *= d;
    std::vector<float>& v = values.emplace_back(size_t(numel));
    const StoredTensor* source = nullptr;  // the teacher's tensor this one starts as, if any
    if (!o.from_teacher_layers.empty()) {
      const int64_t layer = spec.layer == kNoLayer ? kNoLayer : o.from_teacher_layers[size_t(spec.layer)];
      auto name = teacher_names.find({layer, spec.role, spec.part});
      if (name != teacher_names.end()) source = store.find(name->second);
    }
    if (source) {
      if (source->tensor.shape != spec.shape)
        return make_error("--init-from-teacher: '" + spec.name + "' is " + shape_string(spec.shape) +
                          " in the student but " + shape_string(source->tensor.shape) + " in the teacher");
      for (size_t i = 0; i < v.size(); ++i) v[i] = load_as_f32(source->tensor.data, source->tensor.dtype, i);
    } else if (spec.kind == TensorKind::Vector) {
      const bool norm = spec.part == Part::Weight;  // norm weights start at 1, biases at 0
      std::fill(v.begin(), v.end(), norm ? 1.0f - spec.load_offset : 0.0f);
    } else {
      for (float& x : v) x = float(normal.next(kInitStd));
    }
    Tensor t;
    t.data = v.data();
    t.dtype = DType::F32;
    t.shape = spec.shape;
    tensors.push_back({spec.name, t});
  }
  // Everything checked and made: only now does the folder appear.
  fs::create_directories(o.out, ec);
  if (ec) return make_error("creating " + o.out.string() + ": " + ec.message());
  if (Status st = write_text_file(o.out / "config.json", config.dump(2) + "\n"); !st.ok()) return st;
  if (Status st = copy_model_side_files(o.teacher, o.out, ConfigFile::Skip); !st.ok()) return st;
  return write_safetensors(o.out / "model.safetensors", tensors, {{"format", "pt"}});
}

}  // namespace brisk::train
