#include "runtime/embedding.h"

#include <cmath>

#include "core/mapped_file.h"
#include "formats/config_fields.h"
#include "formats/gguf.h"
#include "formats/json_file.h"
#include "tokenizer/utf8.h"

namespace brisk {

namespace fs = std::filesystem;

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::Mean: return "mean";
    case Pooling::Cls: return "cls";
    case Pooling::Last: return "last";
  }
  return "?";
}

Result<Pooling> parse_pooling(const std::string& name) {
  for (Pooling p : {Pooling::Mean, Pooling::Cls, Pooling::Last})
    if (name == pooling_name(p)) return p;
  return make_error("unknown pooling '" + name + "' (mean, cls, last)");
}

Pooling default_pooling(const Model& model) { return model.is_encoder() ? Pooling::Mean : Pooling::Last; }

namespace {

// A GGUF file records the sentence-transformers pooling as {arch}.pooling_type (llama.cpp's
// enum: 0 none, 1 mean, 2 cls, 3 last, 4 rank; convert_hf_to_gguf.py's _try_set_pooling_type) but
// not the Normalize module: brisk then L2-normalizes, as llama.cpp's embedding tool and server do
// by default (embd_normalize 2). None and rank keep the fallback.
Result<PoolingConfig> gguf_pooling_config(const fs::path& path, Pooling fallback) {
  PoolingConfig out{fallback, true};
  BRISK_ASSIGN(file, GgufFile::open(path));
  BRISK_ASSIGN(arch, file->string("general.architecture"));
  BRISK_ASSIGN(type, file->optional_integer(arch + ".pooling_type"));
  if (type == 1) out.pooling = Pooling::Mean;
  if (type == 2) out.pooling = Pooling::Cls;
  if (type == 3) out.pooling = Pooling::Last;
  if (type && (*type < 0 || *type > 4))
    return make_error(path.string() + ": metadata '" + arch + ".pooling_type' = " + std::to_string(*type) +
                      " is not a llama.cpp pooling type (0..4)");
  return out;
}

}  // namespace

Result<PoolingConfig> read_pooling_config(const fs::path& dir, Pooling fallback) {
  if (is_gguf_path(dir)) return gguf_pooling_config(dir, fallback);
  PoolingConfig out;
  out.pooling = fallback;
  const fs::path modules_path = dir / "modules.json";
  if (!is_directory_path(dir) || !path_exists(modules_path)) return out;
  BRISK_ASSIGN(modules, read_json_file(modules_path));
  if (!modules.is_array()) return make_error(modules_path.string() + ": not a list of modules");
  for (size_t i = 0; i < modules.size(); ++i) {
    const std::string at = modules_path.string() + ": module " + std::to_string(i);
    if (!modules[i].is_object()) return make_error(at + " is not an object");
    const ConfigFields m(modules[i], at);
    BRISK_ASSIGN(type, m.string_or("type", ""));
    BRISK_ASSIGN(path, m.string_or("path", ""));
    if (type.ends_with("Normalize")) out.normalize = true;
    if (!type.ends_with("Pooling")) continue;
    const fs::path config_path = dir / path / "config.json";
    auto read = read_json_file(config_path);
    if (!read.ok()) return make_error(at + " ('" + type + "', path '" + path + "'): " + read.error().message);
    const Json config = std::move(read).value();
    // sentence-transformers 5 writes one "pooling_mode" name; earlier versions one boolean
    // "pooling_mode_*" flag per mode. Either way exactly one mode, and one brisk implements.
    std::vector<std::string> modes;
    if (config.contains("pooling_mode")) {
      const Json& mode = config["pooling_mode"];
      for (const Json& m : mode.is_array() ? mode : Json::array({mode})) {
        if (!m.is_string()) return make_error(config_path.string() + ": 'pooling_mode' must be a name or a list of names");
        modes.push_back(m.get<std::string>());
      }
    }
    const ConfigFields fields(config, config_path.string());
    for (const char* key : {"pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens",
                            "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                            "pooling_mode_lasttoken"}) {
      BRISK_ASSIGN(on, fields.boolean_or(key, false));
      if (on) modes.push_back(key);
    }
    if (modes.size() != 1)
      return make_error(config_path.string() + ": expected exactly one pooling mode, found " + std::to_string(modes.size()));
    const std::string& mode = modes[0];
    if (mode == "mean" || mode == "pooling_mode_mean_tokens") out.pooling = Pooling::Mean;
    else if (mode == "cls" || mode == "pooling_mode_cls_token") out.pooling = Pooling::Cls;
    else if (mode == "lasttoken" || mode == "pooling_mode_lasttoken") out.pooling = Pooling::Last;
    else return make_error(config_path.string() + ": pooling mode '" + mode + "' is not supported (mean, cls, lasttoken)");
  }
  return out;
}

Result<std::vector<int32_t>> encoder_tokens(Engine& engine, const std::string& text) {
  BRISK_TRY(utf8::require_valid(text, "the text"));
  std::vector<int32_t> tokens = engine.tokenizer().encode(text, AddSpecial::Yes);
  if (tokens.empty()) return make_error("the text gives no tokens");
  const int64_t limit = std::min(engine.context(), engine.model().max_rows());
  if (int64_t(tokens.size()) > limit)
    return make_error("the text has " + std::to_string(tokens.size()) + " tokens, more than the model's " +
                      std::to_string(limit) + " (context_length_exceeded)");
  BRISK_TRY(engine.check_token_ids(tokens));
  return tokens;
}

namespace {

// The model's output rows for one whole sequence (a fresh pass from position 0).
Result<std::vector<float>> encode_rows(Engine& engine, const std::vector<int32_t>& tokens, LogitRows rows) {
  Model& model = engine.model();
  const int64_t n = int64_t(tokens.size());
  if (n == 0) return make_error("empty sequence");
  if (n > std::min(engine.context(), model.max_rows()))
    return make_error("the sequence has " + std::to_string(n) + " tokens, more than the model's " +
                      std::to_string(std::min(engine.context(), model.max_rows())));
  std::vector<float> out(size_t((rows == LogitRows::All ? n : 1) * model.output_width()));
  model.forward(tokens.data(), n, 0, engine.cache(), rows, out.data());
  return out;
}

}  // namespace

Result<Embedding> embed(Engine& engine, const std::vector<int32_t>& tokens, const PoolingConfig& pooling) {
  Model& model = engine.model();
  if (model.output() != ModelOutput::HiddenStates)
    return make_error("model_type '" + model.config().model_type +
                      "' does not output hidden states here (a classifier, or a decoder opened for logits)");
  BRISK_ASSIGN(rows, encode_rows(engine, tokens, LogitRows::All));
  const int64_t n = int64_t(tokens.size()), d = model.output_width();
  Embedding e;
  e.tokens = n;
  e.vector.assign(size_t(d), 0.0f);
  if (pooling.pooling == Pooling::Mean) {
    // Summed in double, as the mean of n rows; sentence-transformers sums in fp32 (1e-7 apart).
    std::vector<double> sum(size_t(d), 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < d; ++i) sum[size_t(i)] += rows[size_t(r * d + i)];
    for (int64_t i = 0; i < d; ++i) e.vector[size_t(i)] = float(sum[size_t(i)] / double(n));
  } else {
    const int64_t r = pooling.pooling == Pooling::Cls ? 0 : n - 1;
    std::copy(rows.begin() + r * d, rows.begin() + (r + 1) * d, e.vector.begin());
  }
  if (pooling.normalize) {
    double norm = 0;
    for (float v : e.vector) norm += double(v) * v;
    // torch.nn.functional.normalize: x / max(||x||, 1e-12).
    const double scale = 1.0 / std::max(std::sqrt(norm), 1e-12);
    for (float& v : e.vector) v = float(v * scale);
  }
  return e;
}

Result<Classification> classify(Engine& engine, const std::vector<int32_t>& tokens) {
  Model& model = engine.model();
  if (model.output() != ModelOutput::ClassLogits)
    return make_error("model_type '" + model.config().model_type +
                      "' is not a sequence classifier (BertForSequenceClassification)");
  BRISK_ASSIGN(logits, encode_rows(engine, tokens, LogitRows::Last));
  Classification c;
  c.tokens = int64_t(tokens.size());
  c.logits = logits;
  c.labels = model.output_labels();
  double max_logit = -INFINITY, sum = 0;
  for (float v : logits) max_logit = std::max(max_logit, double(v));
  for (float v : logits) sum += std::exp(double(v) - max_logit);
  for (float v : logits) c.probabilities.push_back(float(std::exp(double(v) - max_logit) / sum));
  return c;
}

}  // namespace brisk
