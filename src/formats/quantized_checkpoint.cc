#include "formats/quantized_checkpoint.h"

#include "formats/sparse_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <regex>

#include "formats/config_fields.h"

namespace brisk {

namespace {

constexpr const char* kCodebookFormat = "brisk-codebook";

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// The group the runtime encoder sees: per-channel 4-bit rows use one group spanning the padded row.
int64_t runtime_group(const QuantizedLayout& layout, int64_t cols) {
  const QuantTraits& t = *quant_traits(layout.runtime);
  if (t.per_channel) return std::max<int64_t>(cols, 1);
  return layout.group > 0 ? layout.group : round_up(std::max<int64_t>(cols, 1), t.block);
}

int64_t groups_per_row(const QuantizedLayout& layout, int64_t cols) {
  const int64_t g = runtime_group(layout, cols);
  return (cols + g - 1) / g;
}

std::string disk_format(DType runtime) {
  switch (runtime) {
    case DType::Q4:
    case DType::Q8: return "pack-quantized";
    case DType::Q8A8: return "naive-quantized";
    case DType::F8: return "float-quantized";
    default: return kCodebookFormat;
  }
}

std::string weight_prefix(const std::string& weight_name) { return weight_name + "_"; }  // "x.weight_"

// compressed-tensors packing: codes offset to unsigned (code + 2^(bits-1) for signed codes; our
// 4-bit codes are already unsigned), `32 / bits` per little-endian int32, value i at bit
// bits * (i % (32 / bits)). Rows padded to whole int32 words.
void pack_codes(const int32_t* codes, int64_t n, int bits, int32_t offset, uint8_t* out) {
  const int64_t words = (n * bits + 31) / 32;
  std::memset(out, 0, size_t(words) * 4);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = uint32_t(codes[i] + offset) & ((1u << bits) - 1);
    const int64_t bit = i * bits;
    out[bit / 8] |= uint8_t(u << (bit % 8));
  }
}

int32_t unpacked_code(const uint8_t* packed, int64_t i, int bits, int32_t offset) {
  const int64_t bit = i * bits;
  return int32_t((packed[bit / 8] >> (bit % 8)) & ((1u << bits) - 1)) - offset;
}

OwnedTensor make_tensor(std::string name, DType dtype, std::vector<int64_t> shape) {
  OwnedTensor t{std::move(name), dtype, std::move(shape), {}};
  t.bytes.resize(Tensor{nullptr, dtype, t.shape}.nbytes());
  return t;
}

}  // namespace

std::vector<OwnedTensor> quantized_disk_tensors(const std::string& weight_name, const Tensor& weight,
                                                const QuantizedLayout& layout, ThreadPool* pool) {
  const QuantTraits& t = *quant_traits(weight.dtype);
  const int64_t rows = weight.dim(0), cols = weight.dim(1);
  const int64_t group = runtime_group(layout, cols), n_groups = groups_per_row(layout, cols);
  const std::string p = weight_prefix(weight_name);
  const bool four_bit = t.bits == 4;
  const bool packed_ints = four_bit || weight.dtype == DType::Q8;

  OwnedTensor values = packed_ints
                           ? make_tensor(p + "packed", DType::I32, {rows, (cols * t.bits + 31) / 32})
                           : make_tensor(weight_name, weight.dtype == DType::F8 ? DType::F8_E4M3 : DType::I8,
                                         {rows, cols});
  // 4-bit scales are fp16 in the blocks and fp32 for per-channel formats: stored losslessly.
  OwnedTensor scale = make_tensor(p + "scale", four_bit ? DType::F16 : DType::F32, {rows, n_groups});
  const bool with_zero = weight.dtype == DType::Q4 && layout.symmetry == Symmetry::Asymmetric;
  OwnedTensor zero = make_tensor(p + "zero_point", DType::I32, {(rows + 7) / 8, n_groups});
  std::memset(zero.bytes.data(), 0, zero.bytes.size());

  const size_t rb = row_bytes(weight.dtype, cols);
  // In blocks of 8 rows: the zero points of 8 rows share an int32, so a block is one thread's.
  auto convert = [&](int64_t begin_block, int64_t end_block) {
    std::vector<int32_t> codes(static_cast<size_t>(cols));
    std::vector<GroupParams> params(static_cast<size_t>(n_groups));
    for (int64_t r = begin_block * 8; r < std::min(rows, end_block * 8); ++r) {
      t.decode_row(static_cast<const uint8_t*>(weight.data) + size_t(r) * rb, cols, group, codes.data(), params.data());
      if (packed_ints) {
        const size_t row_out = values.bytes.size() / size_t(rows);
        pack_codes(codes.data(), cols, t.bits, four_bit ? 0 : 128, values.bytes.data() + size_t(r) * row_out);
      } else {
        for (int64_t i = 0; i < cols; ++i) values.bytes[size_t(r * cols + i)] = uint8_t(codes[size_t(i)]);
      }
      for (int64_t g = 0; g < n_groups; ++g) {
        if (four_bit) {
          const uint16_t h = f32_to_f16(params[size_t(g)].scale);
          std::memcpy(scale.bytes.data() + size_t(r * n_groups + g) * 2, &h, 2);
        } else {
          std::memcpy(scale.bytes.data() + size_t(r * n_groups + g) * 4, &params[size_t(g)].scale, 4);
        }
        // Zero points packed along the output dimension (8 rows per int32), offset-coded.
        if (with_zero) zero.bytes[size_t(((r / 8) * n_groups + g) * 4 + (r % 8) / 2)] |=
                           uint8_t((params[size_t(g)].zero & 0xf) << (4 * (r % 2)));
      }
    }
  };
  parallel_for(pool, (rows + 7) / 8, convert);
  std::vector<OwnedTensor> out;
  out.push_back(std::move(values));
  out.push_back(std::move(scale));
  if (with_zero) out.push_back(std::move(zero));
  if (packed_ints) {
    OwnedTensor shape = make_tensor(p + "shape", DType::I64, {2});
    const int64_t dims[2] = {rows, cols};
    std::memcpy(shape.bytes.data(), dims, sizeof(dims));
    out.push_back(std::move(shape));
  }
  return out;
}

namespace {

const char* codebook_name(DType runtime) { return runtime == DType::NF4 ? "nf4" : "log2"; }

Json group_json(const QuantizedGroup& g, const std::string& top_format) {
  const QuantizedLayout& layout = g.layout;
  const QuantTraits& t = *quant_traits(layout.runtime);
  const bool channel = t.per_channel || layout.group == 0;
  Json weights = {{"num_bits", t.bits},
                  {"type", layout.runtime == DType::F8 ? "float" : "int"},
                  {"symmetric", layout.symmetry == Symmetry::Symmetric},
                  {"strategy", channel ? "channel" : "group"},
                  {"group_size", channel ? Json(nullptr) : Json(layout.group)},
                  {"dynamic", false},
                  {"observer", "minmax"},
                  {"actorder", nullptr}};
  Json activations = nullptr;
  if (layout.runtime == DType::Q8A8)
    activations = {{"num_bits", 8}, {"type", "int"}, {"symmetric", true}, {"strategy", "token"}, {"dynamic", true}};
  Json group = {{"targets", g.targets}, {"weights", weights}, {"input_activations", activations},
                {"output_activations", nullptr}};
  if (disk_format(layout.runtime) != top_format) group["format"] = disk_format(layout.runtime);
  if (t.levels) group["codebook"] = codebook_name(layout.runtime);  // a mixed model's codebook groups name their own
  return group;
}

// One config group's layout; `format` is the group's own or the top-level one. Every field is
// type-checked (ConfigFields): a hostile config.json is an error naming the field, never a throw.
Result<QuantizedLayout> parse_group(const Json& q, const Json& g, const std::string& format, const std::string& at) {
  const ConfigFields group(g, at);
  BRISK_ASSIGN(weights, group.object_or_null("weights"));
  if (!weights) return make_error(at + ": config group has no 'weights'");
  const ConfigFields w(*weights, at + ": 'weights'");
  BRISK_ASSIGN(bits, w.integer_or("num_bits", 0));
  BRISK_ASSIGN(type, w.string_or("type", "int"));
  BRISK_ASSIGN(strategy, w.string_or("strategy", ""));
  BRISK_ASSIGN(symmetric, w.boolean_or("symmetric", true));
  BRISK_ASSIGN(acts, group.object_or_null("input_activations"));
  bool dynamic_int8_acts = false;
  if (acts) {
    const ConfigFields a(*acts, at + ": 'input_activations'");
    BRISK_ASSIGN(act_bits, a.integer_or("num_bits", 0));
    BRISK_ASSIGN(act_type, a.string_or("type", ""));
    BRISK_ASSIGN(dynamic, a.boolean_or("dynamic", false));
    dynamic_int8_acts = act_bits == 8 && act_type == "int" && dynamic;
  }

  QuantizedLayout layout;
  layout.symmetry = symmetric ? Symmetry::Symmetric : Symmetry::Asymmetric;
  layout.group = 0;
  if (strategy == "group") {
    if (!w.has("group_size")) return make_error(at + ": strategy 'group' needs an integer group_size");
    BRISK_ASSIGN(group_size, w.integer("group_size"));
    layout.group = group_size;
  } else if (strategy != "channel" && !(strategy == "tensor" && bits == 8)) {
    return make_error(at + ": weight strategy '" + strategy + "' is not supported (group, channel)");
  }
  if (format == "pack-quantized" && bits == 4 && type == "int") {
    layout.runtime = DType::Q4;
  } else if (format == "pack-quantized" && bits == 8 && type == "int" && layout.group == 0 && symmetric) {
    layout.runtime = dynamic_int8_acts ? DType::Q8A8 : DType::Q8;
  } else if ((format == "naive-quantized" || format == "int-quantized") && bits == 8 && type == "int" &&
             layout.group == 0 && symmetric) {
    layout.runtime = dynamic_int8_acts ? DType::Q8A8 : DType::Q8;
  } else if (format == "float-quantized" && bits == 8 && type == "float" && layout.group == 0) {
    layout.runtime = DType::F8;
  } else if (format == kCodebookFormat && bits == 4) {
    // The group's own codebook, else the top level's (a model of one codebook format).
    BRISK_ASSIGN(top_codebook, ConfigFields(q, at).string_or("codebook", ""));
    BRISK_ASSIGN(codebook, ConfigFields(g, at).string_or("codebook", top_codebook));
    if (codebook != "nf4" && codebook != "log2") return make_error(at + ": unknown codebook '" + codebook + "'");
    layout.runtime = codebook == "nf4" ? DType::NF4 : DType::LOG4;
  } else {
    return make_error(at + ": format '" + format + "' with " + std::to_string(bits) + "-bit " + type + " " + strategy +
                      " weights is not supported (see docs/FORMAT.md)");
  }
  if (!symmetric && layout.runtime != DType::Q4)
    return make_error(at + ": asymmetric weights are supported for 4-bit integers only");
  const int64_t block = quant_traits(layout.runtime)->block;
  if (!quant_traits(layout.runtime)->per_channel && layout.group != 0 && layout.group % block != 0)
    return make_error(at + ": group_size " + std::to_string(layout.group) + " is not a multiple of " +
                      std::to_string(block) + " (brisk's 4-bit block)");
  return layout;
}

// compressed-tensors matches "re:" patterns with Python's re.match: anchored at the start only.
bool regex_matches(const std::string& pattern, const std::string& name) {
  try {
    std::smatch match;
    return std::regex_search(name, match, std::regex(pattern), std::regex_constants::match_continuous);
  } catch (const std::regex_error&) {
    return false;  // parse_quantization_config has rejected it already
  }
}

}  // namespace

Json quantization_config_json(const std::vector<QuantizedGroup>& groups, const std::vector<std::string>& ignore) {
  BRISK_CHECK(!groups.empty(), "quantization_config_json: no groups");
  const std::string format = disk_format(groups[0].layout.runtime);
  Json config_groups = Json::object();
  for (size_t i = 0; i < groups.size(); ++i) config_groups["group_" + std::to_string(i)] = group_json(groups[i], format);
  const QuantTraits& first = *quant_traits(groups[0].layout.runtime);
  if (first.levels) {
    return {{"quant_method", "brisk"}, {"format", kCodebookFormat},
            {"codebook", codebook_name(groups[0].layout.runtime)},
            {"levels", std::vector<float>(first.levels, first.levels + 16)},
            {"config_groups", config_groups}, {"ignore", ignore}};
  }
  return {{"quant_method", "compressed-tensors"},
          {"format", format},
          {"quantization_status", "compressed"},
          {"config_groups", config_groups},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr}};
}

Result<std::vector<QuantizedGroup>> parse_quantization_config(const Json& q, const std::string& where) {
  const std::string at = where + ": quantization_config";
  if (!q.is_object()) return make_error(at + " is not an object");
  BRISK_ASSIGN(format, ConfigFields(q, at).string_or("format", ""));
  auto groups = q.find("config_groups");
  std::vector<QuantizedGroup> out;
  if (is_sparse_only(q)) return out;  // stored sparse, not quantized
  if (groups == q.end() || !groups->is_object() || groups->empty())
    return make_error(at + ": 'config_groups' must be an object with at least one group");
  for (const auto& [name, g] : groups->items()) {
    const std::string group_at = at + ": config group '" + name + "'";
    if (!g.is_object()) return make_error(group_at + " is not an object");
    QuantizedGroup parsed;
    const Json targets = g.contains("targets") ? g["targets"] : Json(nullptr);
    if (!targets.is_array() || targets.empty()) return make_error(group_at + ": 'targets' must be a non-empty list");
    for (const Json& t : targets) {
      if (!t.is_string()) return make_error(group_at + ": every target must be a string");
      const std::string target = t.get<std::string>();
      if (target.starts_with("re:")) {
        try {
          std::regex check(target.substr(3));
        } catch (const std::regex_error&) {
          return make_error(group_at + ": target '" + target + "' is not a valid regular expression");
        }
      }
      parsed.targets.push_back(target);
    }
    BRISK_ASSIGN(own_format, ConfigFields(g, group_at).string_or("format", format));
    BRISK_ASSIGN(layout, parse_group(q, g, own_format, group_at));
    parsed.layout = layout;
    out.push_back(std::move(parsed));
  }
  return out;
}

const QuantizedGroup* group_for(const std::vector<QuantizedGroup>& groups, const std::string& module) {
  // How closely a target takes the module: 0 by name, 1 by pattern, 2 by class; 3 not at all.
  auto rank = [&](const std::string& t) {
    if (t == module) return 0;
    if (t.starts_with("re:") && regex_matches(t.substr(3), module)) return 1;
    return t == "Linear" ? 2 : 3;
  };
  const QuantizedGroup* best = nullptr;
  int best_rank = 3;
  for (const QuantizedGroup& g : groups)
    for (const std::string& t : g.targets)
      if (const int r = rank(t); r < best_rank) {  // the first group wins a tie
        best = &g;
        best_rank = r;
      }
  return best;
}

Status convert_quantized_tensors(const std::vector<QuantizedGroup>& groups, WeightStore& store) {
  std::vector<std::string> weights;
  for (const auto& [name, stored] : store.all())
    if (name.size() > 13 && name.compare(name.size() - 13, 13, ".weight_scale") == 0)
      weights.push_back(name.substr(0, name.size() - 6));
  // Rows convert on every core: on one thread this was 40% of loading a 4-bit tinyllama-1.1b
  // (about 3 s of 7 on 2 vCPUs), and it grows with the model, not the batch.
  std::optional<ThreadPool> pool;
  if (!weights.empty()) pool.emplace(0);
  for (const std::string& wname : weights) {
    const std::string p = weight_prefix(wname);
    const StoredTensor* scale = store.find(p + "scale");
    const std::string module = wname.substr(0, wname.size() - 7);  // "...weight" -> the module's name
    const QuantizedGroup* owner = group_for(groups, module);
    if (!owner)
      return make_error(scale->file + ": '" + wname + "' is quantized but no quantization_config group targets '" +
                        module + "'");
    const QuantizedLayout& layout = owner->layout;
    const QuantTraits& t = *quant_traits(layout.runtime);
    const StoredTensor* packed = store.find(p + "packed");
    const StoredTensor* plain = store.find(wname);
    const StoredTensor* zero = store.find(p + "zero_point");
    const StoredTensor* values = packed ? packed : plain;
    const std::string at = scale->file + ": '" + wname + "'";
    if (!values) return make_error(at + ": has a weight_scale but no weight or weight_packed");
    int64_t rows = values->tensor.dim(0), cols = values->tensor.rank() == 2 ? values->tensor.dim(1) : 0;
    if (const StoredTensor* shape = store.find(p + "shape")) {
      if (shape->tensor.numel() != 2) return make_error(at + "_shape must hold 2 values");
      rows = int64_t(load_as_f32(shape->tensor.data, shape->tensor.dtype, 0));
      cols = int64_t(load_as_f32(shape->tensor.data, shape->tensor.dtype, 1));
    }
    const int64_t group = runtime_group(layout, cols), n_groups = groups_per_row(layout, cols);
    const bool four_bit = t.bits == 4;
    const DType want = packed ? DType::I32 : layout.runtime == DType::F8 ? DType::F8_E4M3 : DType::I8;
    const int64_t want_cols = packed ? (cols * t.bits + 31) / 32 : cols;
    if (values->tensor.dtype != want || values->tensor.rank() != 2 || values->tensor.dim(0) != rows ||
        values->tensor.dim(1) != want_cols)
      return make_error(at + ": packed values are " + std::string(dtype_name(values->tensor.dtype)) + " " +
                        shape_string(values->tensor.shape) + ", expected " + std::string(dtype_name(want)) + " " +
                        shape_string({rows, want_cols}));
    // Per-tensor fp8/int8 scales ([1] or [1, 1]) broadcast to every row.
    const int64_t scale_n = scale->tensor.numel();
    if (scale_n != rows * n_groups && !(scale_n == 1 && t.per_channel))
      return make_error(at + "_scale has shape " + shape_string(scale->tensor.shape) + ", expected " +
                        shape_string({rows, n_groups}));
    if (layout.symmetry == Symmetry::Asymmetric && (!zero || zero->tensor.numel() != (rows + 7) / 8 * n_groups))
      return make_error(at + ": asymmetric weights need a weight_zero_point of shape " +
                        shape_string({(rows + 7) / 8, n_groups}));

    const size_t rb = row_bytes(layout.runtime, cols);
    auto buffer = std::shared_ptr<uint8_t[]>(new uint8_t[rb * size_t(rows)]);
    const auto* src = static_cast<const uint8_t*>(values->tensor.data);
    const size_t src_row = values->tensor.nbytes() / size_t(std::max<int64_t>(rows, 1));
    pool->parallel_for(rows, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> codes(static_cast<size_t>(cols));
      std::vector<GroupParams> params(static_cast<size_t>(n_groups));
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t i = 0; i < cols; ++i) {
          if (packed)
            codes[size_t(i)] = unpacked_code(src + size_t(r) * src_row, i, t.bits, four_bit ? 0 : 128);
          else
            codes[size_t(i)] = layout.runtime == DType::F8 ? int32_t(src[r * cols + i]) : int32_t(int8_t(src[r * cols + i]));
        }
        for (int64_t g = 0; g < n_groups; ++g) {
          GroupParams& gp = params[size_t(g)];
          gp.scale = load_as_f32(scale->tensor.data, scale->tensor.dtype, size_t(scale_n == 1 ? 0 : r * n_groups + g));
          gp.zero = 0;
          if (layout.runtime == DType::Q4) {
            gp.zero = 8;
            if (layout.symmetry == Symmetry::Asymmetric) {
              const auto* z = static_cast<const uint8_t*>(zero->tensor.data);
              gp.zero = (z[size_t(((r / 8) * n_groups + g) * 4 + (r % 8) / 2)] >> (4 * (r % 2))) & 0xf;
            }
          }
        }
        t.encode_row(codes.data(), params.data(), cols, group, buffer.get() + size_t(r) * rb);
      }
    });
    std::vector<std::string> parts = {p + "scale", p + "packed", p + "zero_point", p + "shape", wname};
    store.replace(parts, wname, StoredTensor{Tensor{buffer.get(), layout.runtime, {rows, cols}}, scale->file}, buffer);
  }
  return ok_status();
}

}  // namespace brisk
