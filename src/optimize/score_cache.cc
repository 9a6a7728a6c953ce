#include "optimize/score_cache.h"

#include <cmath>
#include <fstream>

#include "backends/cpu/cpu_backend.h"
#include "formats/json_file.h"
#include "models/model.h"

namespace brisk::recipe {

namespace fs = std::filesystem;

namespace {

constexpr int kFormatVersion = 1;

Json key_json(const ScoreKey& k) {
  return Json{{"model", k.model}, {"model_bytes", k.model_bytes}, {"calib", k.calib}, {"calib_bytes", k.calib_bytes},
              {"device", k.device}, {"candidates", k.candidates}, {"window", k.window}, {"tokens", k.tokens}};
}

// An optional number as JSON (null where the candidate cannot hold the group).
template <class T>
Json optional_json(const std::optional<T>& v) {
  return v ? Json(*v) : Json(nullptr);
}

// Reads row `name` of a group: one value or null per candidate, finite and >= 0.
template <class T>
Result<std::vector<std::optional<T>>> read_row(const Json& group, const char* name, size_t candidates,
                                               const std::string& where) {
  const Json* row = group.is_object() && group.contains(name) ? &group[name] : nullptr;
  if (!row || !row->is_array() || row->size() != candidates)
    return make_error(where + ": '" + name + "' must be an array of " + std::to_string(candidates) + " values");
  std::vector<std::optional<T>> out;
  for (const Json& v : *row) {
    if (v.is_null()) {
      out.emplace_back();
      continue;
    }
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
      return make_error(where + ": '" + name + "' holds " + json_excerpt(v) + ", not a number >= 0");
    out.emplace_back(v.get<T>());
  }
  return out;
}

// A kept measurement, every field checked (the file is the user's to edit).
Result<Measured> read_measured(const Json& j, const std::string& at) {
  if (!j.is_object()) return make_error(at + " must be an object");
  Measured m;
  auto number = [&](const char* field, bool positive) -> Result<double> {
    const Json* v = j.contains(field) ? &j[field] : nullptr;
    if (!v || !v->is_number() || !std::isfinite(v->get<double>()) || v->get<double>() < 0 ||
        (positive && v->get<double>() == 0))
      return make_error(at + ": '" + field + "' holds " + (v ? json_excerpt(*v) : std::string("nothing")) + ", not a number " +
                        (positive ? "> 0" : ">= 0"));
    return v->get<double>();
  };
  BRISK_ASSIGN(ppl, number("ppl", true));
  BRISK_ASSIGN(decode, number("decode_tok_s", false));
  BRISK_ASSIGN(prefill, number("prefill_tok_s", false));
  BRISK_ASSIGN(bytes, number("bytes", false));
  m.ppl = ppl;
  m.decode_tok_s = decode;
  m.prefill_tok_s = prefill;
  m.bytes = uint64_t(bytes);
  if (j.contains("eval_cmd_score")) {
    const Json& v = j["eval_cmd_score"];
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      return make_error(at + ": 'eval_cmd_score' holds " + json_excerpt(v) + ", not a number");
    m.eval_cmd_score = v.get<double>();
  }
  return m;
}

}  // namespace

Json measured_json(const Measured& m) {
  Json j = {{"ppl", m.ppl}, {"decode_tok_s", m.decode_tok_s}, {"prefill_tok_s", m.prefill_tok_s}, {"bytes", m.bytes}};
  if (m.eval_cmd_score) j["eval_cmd_score"] = *m.eval_cmd_score;
  return j;
}

Status save_scores(const fs::path& file, const ScoreKey& key, const Scores& scores, const std::vector<Candidate>& candidates) {
  const Sensitivity& s = scores.sensitivity;
  Json groups = Json::array();
  for (size_t g = 0; g < s.groups.size(); ++g) {
    Json kl = Json::array(), bytes = Json::array(), decode = Json::array(), prefill = Json::array();
    for (size_t c = 0; c < candidates.size(); ++c) {
      kl.push_back(optional_json(s.kl[g][c]));
      bytes.push_back(optional_json(s.bytes[g][c]));
      if (!scores.times) continue;
      decode.push_back(optional_json(scores.times->decode[g][c]));
      prefill.push_back(optional_json(scores.times->prefill_per_token[g][c]));
    }
    Json group = {{"label", s.groups[g].label()}, {"params", s.groups[g].params()}, {"kl", kl}, {"bytes", bytes}};
    if (scores.times) {
      group["decode_s"] = decode;
      group["prefill_s_per_token"] = prefill;
    }
    groups.push_back(group);
  }
  Json doc = {{"brisk_optimize_scores", kFormatVersion}, {"key", key_json(key)}, {"tokens", s.tokens},
              {"seconds", s.seconds}, {"groups", groups}};
  if (!scores.measured.empty()) {
    Json recipes = Json::object();
    for (const auto& [recipe, m] : scores.measured) recipes[recipe] = measured_json(m);
    doc["measured"] = {{"under", scores.measured_under}, {"recipes", recipes}};
  }
  fs::path partial = file;
  partial += ".partial";
  {
    std::ofstream out(partial);
    out << doc.dump(1) << "\n";
    if (!out) return make_error("--scores " + file.string() + ": cannot write");
  }
  std::error_code ec;
  fs::rename(partial, file, ec);
  if (ec) return make_error("--scores " + file.string() + ": cannot write: " + ec.message());
  return ok_status();
}

Result<std::optional<Scores>> load_scores(const fs::path& file, const ScoreKey& key, const std::vector<Candidate>& candidates) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::optional<Scores>();
  const std::string where = "--scores " + file.string();
  BRISK_ASSIGN(doc, read_json_file(file));
  if (!doc.is_object() || !doc.contains("brisk_optimize_scores") || doc["brisk_optimize_scores"] != kFormatVersion)
    return make_error(where + ": not a brisk optimize scores file (version " + std::to_string(kFormatVersion) + ")");
  const Json want = key_json(key);
  const Json& have = doc["key"];
  for (const auto& [field, value] : want.items())
    if (!have.is_object() || !have.contains(field) || have[field] != value)
      return make_error(where + ": scored with " + field + " " +
                        (have.is_object() && have.contains(field) ? json_excerpt(have[field]) : std::string("(none)")) +
                        ", this run has " + json_excerpt(value) + ": give the same inputs or another --scores file");

  // The model's own groups (their matrices), matched label by label.
  CpuBackend host(1, cpu::Bf16Math::Exact, WeightPlacement::Mapped);
  BRISK_ASSIGN(model, load_model(key.model, host, ModelOptions{}));
  BRISK_ASSIGN(groups, search_groups(*model));
  const Json& saved = doc["groups"];
  if (!saved.is_array() || saved.size() != groups.size())
    return make_error(where + ": " + std::to_string(saved.is_array() ? saved.size() : 0) + " groups, the model has " +
                      std::to_string(groups.size()));
  const size_t C = candidates.size();
  Scores scores;
  Sensitivity& s = scores.sensitivity;
  // Timings are in every group or in none (a run stopped between scoring and timing).
  const bool timed = !saved.empty() && saved[0].is_object() && saved[0].contains("decode_s");
  if (timed) scores.times = GroupTimes{};
  for (size_t g = 0; g < groups.size(); ++g) {
    const Json& j = saved[g];
    const std::string at = where + ", group " + std::to_string(g);
    if (!j.is_object() || j.value("label", "") != groups[g].label() || j.value("params", int64_t(-1)) != groups[g].params())
      return make_error(at + ": not the model's " + groups[g].label());
    BRISK_ASSIGN(kl, read_row<double>(j, "kl", C, at));
    BRISK_ASSIGN(bytes, read_row<uint64_t>(j, "bytes", C, at));
    auto scored = [&](size_t c) { return kl[c].has_value(); };
    for (size_t c = 0; c < C; ++c)
      if (scored(c) != holds(groups[g], candidates[c]) || bytes[c].has_value() != scored(c))
        return make_error(at + ": candidate " + candidates[c].name + " is scored where it cannot hold the group, or the "
                          "other way round");
    if (timed) {
      BRISK_ASSIGN(decode, read_row<double>(j, "decode_s", C, at));
      BRISK_ASSIGN(prefill, read_row<double>(j, "prefill_s_per_token", C, at));
      for (size_t c = 0; c < C; ++c)
        if (decode[c].has_value() != scored(c) || prefill[c].has_value() != scored(c))
          return make_error(at + ": candidate " + candidates[c].name + " is timed where it is not scored, or the other way round");
      scores.times->decode.push_back(std::move(decode));
      scores.times->prefill_per_token.push_back(std::move(prefill));
    } else if (j.contains("decode_s") || j.contains("prefill_s_per_token")) {
      return make_error(at + ": timings here but not in group 0");
    }
    s.kl.push_back(std::move(kl));
    s.bytes.push_back(std::move(bytes));
  }
  if (doc.contains("measured")) {
    const Json& kept = doc["measured"];
    if (!kept.is_object() || !kept.contains("under") || !kept.contains("recipes") || !kept["recipes"].is_object())
      return make_error(where + ": 'measured' must be an object with 'under' and an object of 'recipes'");
    scores.measured_under = kept["under"];
    for (const auto& [recipe, m] : kept["recipes"].items()) {
      const std::string name = recipe.size() > 64 ? recipe.substr(0, 64) + "..." : recipe;
      BRISK_ASSIGN(read, read_measured(m, where + ", measured recipe '" + name + "'"));
      scores.measured[recipe] = read;
    }
  }
  s.groups = std::move(groups);
  s.tokens = doc.value("tokens", int64_t(0));
  s.seconds = doc.value("seconds", 0.0);
  return std::optional<Scores>(std::move(scores));
}

}  // namespace brisk::recipe
