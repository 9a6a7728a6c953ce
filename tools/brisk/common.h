// Shared CLI plumbing: subcommand registration, error printing, a terminal progress bar.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "core/error.h"
#include "formats/json_file.h"
#include "runtime/engine.h"

namespace brisk::cli {

// Each subcommand file defines an add_* that registers its flags and returns how to run it.
struct Command {
  CLI::App* app;            // the subcommand, parsed by CLI11
  std::function<int()> run;  // returns the exit code
};
Command add_generate(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_perplexity(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_synth(CLI::App& app);
Command add_inspect(CLI::App& app);
Command add_quantize(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_embed(CLI::App& app);
Command add_classify(CLI::App& app);

// The flags every model-running command shares: --device, --threads, --bf16-fast, --mmap.
void add_engine_flags(CLI::App* sub, BackendOptions& options);
// The same plus the engine's own: --kv-mem (KV cache bytes; K/M/G suffixes), --kv-dtype and
// --no-graphs.
void add_engine_flags(CLI::App* sub, EngineOptions& options);
// --kv-dtype f32|bf16|int8|fp8 alone (commands that take no other engine flag).
void add_kv_dtype_flag(CLI::App* sub, KvDtype& dtype);

// "4096", "512K", "8M", "2G" (powers of 1024) -> bytes.
Result<int64_t> parse_byte_size(const std::string& text);

// Prints "brisk: error: ..." to stderr and returns the exit code for user errors.
int fail(const Error& error);
int fail(const std::string& message);
// Prints a JSON document on stdout (one line; scripts parse it).
void print_json(const Json& json);

// Redraws one line on stderr when stderr is a terminal; silent otherwise (logs stay clean).
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  void update(double done, double total, const std::string& detail = "");
  void finish();

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  double start_;
};

}  // namespace brisk::cli
