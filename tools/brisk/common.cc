#include "common.h"

#include "grammar/json_schema.h"

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <vector>

namespace brisk::cli {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

std::string default_model_dir() {
  if (const char* env = std::getenv("BRISK_DEFAULT_MODEL"); env && *env) return env;
  return std::string(BRISK_SOURCE_DIR) + "/models/sotu-tiny";
}

CLI::Option* add_model_option(CLI::App* sub, std::string& model, const std::string& what) {
  model = default_model_dir();
  return sub->add_option("-m,--model", model, what + "; default: the bundled sotu-tiny ($BRISK_DEFAULT_MODEL overrides)")
      ->capture_default_str();
}

namespace {

CLI::Validator number_check(std::function<bool(double)> ok, const std::string& what) {
  return CLI::Validator(
      [ok, what](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || !std::isfinite(v)) return "'" + text + "' is not a finite number";
        return ok(v) ? std::string() : "must be " + what + ", got " + text;
      },
      what, what);
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// Edit distance, for suggesting the flag a typo meant.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean --temp?)" for the closest long flag of the innermost parsed (sub)command.
std::string suggestion(const CLI::App& app, const std::string& arg) {
  const CLI::App* scope = &app;
  for (const CLI::App* sub : app.get_subcommands()) scope = sub;
  const std::string word = arg.substr(0, arg.find('='));
  std::string best;
  size_t best_distance = 3;  // at most two edits away
  for (const CLI::Option* option : scope->get_options())
    for (const std::string& name : option->get_lnames()) {
      const size_t d = edit_distance(word, "--" + name);
      if (d < best_distance) best_distance = d, best = "--" + name;
    }
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

}  // namespace

CLI::Validator non_negative() { return number_check([](double v) { return v >= 0; }, ">= 0"); }
CLI::Validator positive() { return number_check([](double v) { return v > 0; }, "> 0"); }
CLI::Validator in_range(double lo, double hi) {
  return number_check([lo, hi](double v) { return v >= lo && v <= hi; },
                      "in [" + format_number(lo) + ", " + format_number(hi) + "]");
}

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError& e) {
    std::string hint;
    for (int i = 1; i < argc && hint.empty(); ++i)
      if (std::string(argv[i]).rfind("--", 0) == 0 && std::string(e.what()).find(argv[i]) != std::string::npos)
        hint = suggestion(app, argv[i]);
    std::fprintf(stderr, "brisk: error: %s%s\nRun with --help for the options.\n", e.what(), hint.c_str());
    return 2;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "brisk: error: %s\nRun with --help for the options.\n", e.what());
    return 2;
  }
  return -1;
}

void add_sampling_flags(CLI::App* sub, SamplingParams& sampling, int64_t& seed) {
  sub->add_option("--temp", sampling.temperature, "Sampling temperature; 0 = greedy")->capture_default_str()->check(non_negative());
  sub->add_option("--top-k", sampling.top_k, "Keep the k most likely tokens; 0 = off")->capture_default_str()->check(non_negative());
  sub->add_option("--top-p", sampling.top_p, "Nucleus sampling mass; 1 = off")->capture_default_str()->check(in_range(0, 1));
  sub->add_option("--min-p", sampling.min_p, "Drop tokens below min-p x p(best); 0 = off")->capture_default_str()->check(in_range(0, 1));
  sub->add_option("--repeat-penalty", sampling.repetition_penalty, "Repetition penalty over prompt and output; 1 = off")->capture_default_str()->check(positive());
  sub->add_option("--presence-penalty", sampling.presence_penalty, "Subtract from tokens already generated")->capture_default_str()->check(in_range(-2, 2));
  sub->add_option("--frequency-penalty", sampling.frequency_penalty, "Subtract per occurrence in the output")->capture_default_str()->check(in_range(-2, 2));
  sub->add_option("-s,--seed", seed, "Random seed; -1 = pick one (printed with --json)")->capture_default_str();
}

void add_grammar_flags(CLI::App* sub, GrammarFlags& flags) {
  CLI::Option* grammar = sub->add_option("--grammar", flags.grammar_file,
                                         "Constrain the output to a GBNF grammar (a file; start rule 'root')");
  sub->add_option("--json-schema", flags.schema_file, "Constrain the output to JSON valid under this JSON Schema (a file)")
      ->excludes(grammar);
}

Result<std::shared_ptr<grammar::ConstrainedGrammar>> load_grammar(const GrammarFlags& flags, Engine& engine) {
  if (flags.grammar_file.empty() && flags.schema_file.empty()) return std::shared_ptr<grammar::ConstrainedGrammar>();
  const std::string& file = flags.grammar_file.empty() ? flags.schema_file : flags.grammar_file;
  auto text = read_text_file(file);
  if (!text) return make_error(file + ": " + text.error().message);
  std::string gbnf = std::move(text).value();
  if (!flags.schema_file.empty()) {
    const nlohmann::ordered_json schema = nlohmann::ordered_json::parse(gbnf, nullptr, false);
    if (schema.is_discarded()) return make_error(file + ": not valid JSON");
    auto compiled = grammar::json_schema_gbnf(schema);
    if (!compiled) return make_error(file + ": " + compiled.error().message);
    gbnf = std::move(compiled).value();
  }
  auto bound = engine.grammars().get(gbnf);
  if (!bound) return make_error(file + ": " + bound.error().message);
  return std::move(bound).value();
}

uint64_t resolve_seed(int64_t seed) { return seed >= 0 ? uint64_t(seed) : std::random_device{}(); }

Result<std::vector<int32_t>> read_calibration_tokens(const std::string& model_dir, const std::string& file,
                                                     const std::string& method) {
  if (file.empty()) return std::vector<int32_t>{};
  BRISK_ASSIGN(text, read_text_file(file));
  BRISK_TRY(utf8::require_valid(text, file));
  BRISK_ASSIGN(tokenizer, Tokenizer::load(model_dir));
  std::vector<int32_t> tokens = tokenizer->encode(text, AddSpecial::No);
  if (!method.empty())
    std::fprintf(stderr, "calibrating layer by layer (%s, %zu tokens of text)...\n", method.c_str(), tokens.size());
  return tokens;
}

Result<std::string> read_prompt_file(const std::string& path) {
  constexpr size_t kMaxPromptBytes = size_t(64) << 20;
  if (path != "-") return read_text_file(path, kMaxPromptBytes);
  std::string text;
  char chunk[1 << 16];
  size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
    text.append(chunk, got);
    if (text.size() > kMaxPromptBytes) return make_error("the prompt on standard input is larger than 64 MiB");
  }
  if (std::ferror(stdin)) return make_error("cannot read the prompt from standard input");
  strip_utf8_bom(text);
  return text;
}

std::string apply_generation_defaults(const CLI::App& sub, const GenerationConfig& config, SamplingParams& s) {
  SamplingParams merged = config.apply(s);
  if (sub.count("--temp")) merged.temperature = s.temperature;
  if (sub.count("--top-k")) merged.top_k = s.top_k;
  if (sub.count("--top-p")) merged.top_p = s.top_p;
  if (sub.count("--min-p")) merged.min_p = s.min_p;
  if (sub.count("--repeat-penalty")) merged.repetition_penalty = s.repetition_penalty;
  s = merged;
  char text[200];
  if (s.temperature <= 0)
    std::snprintf(text, sizeof(text), "sampling: greedy, repeat-penalty %.2f", s.repetition_penalty);
  else
    std::snprintf(text, sizeof(text), "sampling: temp %.2f, top-k %d, top-p %.2f, min-p %.2f, repeat-penalty %.2f",
                  s.temperature, s.top_k, s.top_p, s.min_p, s.repetition_penalty);
  const std::string from_file = config.fields_set();
  return std::string(text) + (from_file.empty() ? "" : " (generation_config.json: " + from_file + "; flags win)");
}

void add_engine_flags(CLI::App* sub, BackendOptions& options) {
  sub->add_option("-t,--threads", options.threads, "CPU threads; 0 = all cores")->capture_default_str();
  sub->add_option("--device", options.device, "cpu, cuda or cuda:N (no silent fallback)")->capture_default_str();
  sub->add_flag_function(
      "--bf16-fast", [&options](int64_t) { options.bf16 = Bf16Precision::Fast; },
      "BF16 weights: round activations (and prefill attention's operands) to bf16 and use bf16 dot\n"
      "products (about 2x prefill on AVX512-BF16 CPUs; logits ~1e-3 from fp32). Default: exact fp32\n"
      "arithmetic on bf16 weights");
  sub->add_flag("--mmap", options.mmap_weights,
                "CPU: read weights in place from the mapped files (less memory, faster start) instead of\n"
                "copying them to huge pages (the default: decode ~30% faster)");
}

Result<int64_t> parse_byte_size(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return make_error("'" + text + "' is not a size in bytes (examples: 1048576, 512M, 8G)");
  }
  std::string suffix = text.substr(used);
  double scale = 1;
  if (suffix == "K" || suffix == "k" || suffix == "KiB") scale = 1024.0;
  else if (suffix == "M" || suffix == "MiB") scale = 1024.0 * 1024;
  else if (suffix == "G" || suffix == "GiB") scale = 1024.0 * 1024 * 1024;
  else if (!suffix.empty() && suffix != "B") return make_error("'" + text + "': unknown size suffix '" + suffix + "' (K, M, G)");
  if (!(value > 0)) return make_error("'" + text + "': the size must be positive");
  return int64_t(value * scale);
}

void add_engine_flags(CLI::App* sub, EngineOptions& options) {
  add_engine_flags(sub, options.backend);
  sub->add_option_function<std::string>(
         "--kv-mem",
         [&options](const std::string& text) {
           Result<int64_t> bytes = parse_byte_size(text);
           if (!bytes.ok()) throw CLI::ValidationError("--kv-mem", bytes.error().message);
           options.kv_bytes = bytes.value();
         },
         "KV cache memory in bytes (K/M/G suffixes); default: one sequence of the full context\n"
         "(serve: --max-batch sequences of 1024 tokens)")
      ->type_name("BYTES");
  add_kv_dtype_flag(sub, options.kv_dtype);
  sub->add_flag_function(
      "--no-graphs", [&options](int64_t) { options.decode_graphs = DecodeGraphs::Off; },
      "CUDA: launch every kernel of every decode step instead of replaying recorded graphs");
}

void add_parallel_flags(CLI::App* sub, EngineOptions& options) {
  sub->add_option("--tp", options.tensor_parallel,
                  "Tensor parallel: split the model's heads and MLP over N ranks of an MPI job, started as\n"
                  "'mpirun -np N brisk ... --tp N' (CPU; rank 0 reads, prints and serves)")
      ->check(CLI::Range(int64_t(1), int64_t(1024)))
      ->capture_default_str();
  sub->add_option("--pp", options.pipeline_parallel,
                  "Pipeline parallel: split the model's layers into M stages, each holding its layers'\n"
                  "weights and KV cache; large batches run as micro-batches that overlap across stages.\n"
                  "With --tp N: mpirun -np N*M (rank r is stage r / N, shard r % N)")
      ->check(CLI::Range(int64_t(1), int64_t(1024)))
      ->capture_default_str();
}

Result<std::unique_ptr<Engine>> open_engine(const EngineOptions& options) {
  BRISK_ASSIGN(engine, Engine::open(options));
  if (engine->job_rank() == 0) return engine;
  engine->follow();
  return std::unique_ptr<Engine>();
}

void add_kv_dtype_flag(CLI::App* sub, std::optional<KvDtype>& dtype) {
  sub->add_option_function<std::string>(
         "--kv-dtype",
         [&dtype](const std::string& text) {
           const std::optional<KvDtype> parsed = kv_dtype_from_name(text);
           if (!parsed)
             throw CLI::ValidationError("--kv-dtype", "'" + text + "' is not a KV cache type (f32, bf16, int8, fp8)");
           dtype = *parsed;
         },
         "KV cache element type: f32 (exact), bf16, int8 or fp8 (e4m3); int8/fp8 keep one scale per\n"
         "position and KV head. Narrower types hold 2-4x the positions in --kv-mem. Default: the\n"
         "model folder's brisk_kv_dtype (brisk optimize --space kv writes it), else f32")
      ->type_name("TYPE");
}

int fail(const Error& error) { return fail(error.message); }

int fail(const std::string& message) {
  std::fprintf(stderr, "brisk: error: %s\n", message.c_str());
  return 1;
}

void print_json(const Json& json) { std::cout << json.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl; }

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)), terminal_(isatty(STDERR_FILENO)), start_(now()) {}

void show_load_progress(EngineOptions& options) {
  auto bar = std::make_shared<ProgressBar>("loading");
  options.on_load_progress = [bar](int64_t done, int64_t total) {
    bar->update(double(done) / double(1 << 20), double(total) / double(1 << 20), "MiB of weights");
    if (done >= total) bar->finish();
  };
}

void ProgressBar::update(double done, double total, const std::string& detail) {
  constexpr double kProgressDelaySeconds = 0.5, kLogDelaySeconds = 10;
  if (total <= 0) return;
  const double frac = std::min(1.0, done / total);
  if (!terminal_) {
    const int tenths = int(frac * 10);
    if (tenths > logged_tenths_ && now() - start_ >= kLogDelaySeconds) {
      std::fprintf(stderr, "%s: %.0f%% (%.0fs)  %s\n", label_.c_str(), 100 * frac, now() - start_, detail.c_str());
      std::fflush(stderr);
    }
    logged_tenths_ = std::max(logged_tenths_, tenths);
    return;
  }
  if (!drawn_ && now() - start_ < kProgressDelaySeconds) return;
  const int width = 30;
  const int filled = int(frac * width);
  const double elapsed = now() - start_;
  const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
  std::string bar(size_t(filled), '#');
  bar.append(size_t(width - filled), '-');
  std::fprintf(stderr, "\r%s [%s] %5.1f%%  %.0fs elapsed, ~%.0fs left  %s\x1b[K", label_.c_str(), bar.c_str(),
               100 * frac, elapsed, eta, detail.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace brisk::cli
