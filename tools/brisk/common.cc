#include "common.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

namespace brisk::cli {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

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

void add_kv_dtype_flag(CLI::App* sub, KvDtype& dtype) {
  sub->add_option_function<std::string>(
         "--kv-dtype",
         [&dtype](const std::string& text) {
           const std::optional<KvDtype> parsed = kv_dtype_from_name(text);
           if (!parsed)
             throw CLI::ValidationError("--kv-dtype", "'" + text + "' is not a KV cache type (f32, bf16, int8, fp8)");
           dtype = *parsed;
         },
         "KV cache element type: f32 (default, exact), bf16, int8 or fp8 (e4m3); int8/fp8 keep one\n"
         "scale per position and KV head. Narrower types hold 2-4x the positions in --kv-mem")
      ->type_name("TYPE");
}

int fail(const Error& error) { return fail(error.message); }

int fail(const std::string& message) {
  std::fprintf(stderr, "brisk: error: %s\n", message.c_str());
  return 1;
}

void print_json(const Json& json) { std::cout << json.dump(-1, ' ', false, Json::error_handler_t::replace) << std::endl; }

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)), enabled_(isatty(STDERR_FILENO)), start_(now()) {}

void ProgressBar::update(double done, double total, const std::string& detail) {
  if (!enabled_ || total <= 0) return;
  const int width = 30;
  const double frac = std::min(1.0, done / total);
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
