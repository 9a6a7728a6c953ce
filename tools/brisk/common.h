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
Command add_chat(CLI::App& app);
Command add_train(CLI::App& app);
Command add_distill(CLI::App& app);
Command add_prune(CLI::App& app);
Command add_lowrank(CLI::App& app);
Command add_export(CLI::App& app);
Command add_optimize(CLI::App& app);

// -m/--model, defaulting to the bundled model (default_model_dir) so that a fresh clone runs
// without downloading anything. `what` names the accepted forms for --help.
CLI::Option* add_model_option(CLI::App* sub, std::string& model, const std::string& what);
// $BRISK_DEFAULT_MODEL if set, else the repository's models/sotu-tiny (a 4.2M-parameter Llama
// trained on public-domain text by scripts/train_default_model.py).
std::string default_model_dir();

// Number checks for flags, with short messages (CLI11's own print the double range's 309 digits)
// that also refuse nan and inf.
CLI::Validator non_negative();
CLI::Validator positive();
// Sequences decoded together (--batch, --max-batch): far beyond what any KV cache here holds, and
// small enough that sizes derived from it (rows x vocabulary, positions x 1024) cannot overflow.
inline constexpr int64_t kMaxBatchSequences = 16384;
CLI::Validator in_range(double lo, double hi);

// Parses argv; a usage error prints "brisk: error: ..." (with the nearest flag for a mistyped one)
// and gives exit code 2, as getopt-style tools do. Returns -1 when the command should run.
int parse_command_line(CLI::App& app, int argc, char** argv);

// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --presence-penalty, --frequency-penalty
// and -s/--seed (-1: pick one; the caller resolves it).
void add_sampling_flags(CLI::App* sub, SamplingParams& sampling, int64_t& seed);

// --grammar FILE (GBNF) and --json-schema FILE: what constrains the output (generate, bench).
struct GrammarFlags {
  std::string grammar_file, schema_file;
};
void add_grammar_flags(CLI::App* sub, GrammarFlags& flags);
// The grammar the flags name, bound to the engine's vocabulary; null when neither was given.
Result<std::shared_ptr<grammar::ConstrainedGrammar>> load_grammar(const GrammarFlags& flags, Engine& engine);
// The seed flag's value, or a random one for -1.
uint64_t resolve_seed(int64_t seed);

// A prompt from a file, or from standard input for "-": at most 64 MiB; a UTF-8 byte-order mark
// at the start is dropped (as Python's utf-8-sig reads it).
Result<std::string> read_prompt_file(const std::string& path);

// Calibration text (--calib FILE) as token ids of the model's tokenizer, without special tokens;
// none when file is empty (no --calib). With `method`, announces the layer-by-layer pass on stderr.
Result<std::vector<int32_t>> read_calibration_tokens(const std::string& model_dir, const std::string& file,
                                                     const std::string& method = "");

// The sampling of a run: for each sampling flag the user did not give (--temp, --top-k, --top-p,
// --min-p, --repeat-penalty), the model's generation_config.json value when it has one. Returns a
// one-line description of what will be used, for stderr.
std::string apply_generation_defaults(const CLI::App& sub, const GenerationConfig& config, SamplingParams& sampling);

// The flags every model-running command shares: --device, --threads, --bf16-fast, --mmap.
void add_engine_flags(CLI::App* sub, BackendOptions& options);
// A "loading" progress bar on a terminal while Engine::open places the weights.
void show_load_progress(EngineOptions& options);
// The same plus the engine's own: --kv-mem (KV cache bytes; K/M/G suffixes), --kv-dtype and
// --no-graphs.
void add_engine_flags(CLI::App* sub, EngineOptions& options);
// --tp N --pp M: the model split over the N x M ranks of an MPI job (generate, perplexity, bench,
// chat, serve).
void add_parallel_flags(CLI::App* sub, EngineOptions& options);
// Engine::open. On a rank other than 0 of a split model's job it then follows rank 0's passes
// until rank 0 is done and returns null: the command ends there (rank 0 speaks for the job).
Result<std::unique_ptr<Engine>> open_engine(const EngineOptions& options);
// --kv-dtype f32|bf16|int8|fp8 alone (commands that take no other engine flag).
void add_kv_dtype_flag(CLI::App* sub, std::optional<KvDtype>& dtype);

// "4096", "512K", "8M", "2G" (powers of 1024) -> bytes.
Result<int64_t> parse_byte_size(const std::string& text);

// Prints "brisk: error: ..." to stderr and returns the exit code for user errors.
int fail(const Error& error);
int fail(const std::string& message);
// Prints a JSON document on stdout (one line; scripts parse it).
void print_json(const Json& json);

// Redraws one line on stderr when stderr is a terminal. Otherwise (a batch job's log) work that
// runs longer than kLogDelaySeconds writes one line per tenth done, and shorter work nothing, so
// logs stay clean but an 8B model's minutes-long stages still say where they are. Work that ends
// within kProgressDelaySeconds draws nothing either way.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  void update(double done, double total, const std::string& detail = "");
  void finish();

 private:
  std::string label_;
  bool terminal_;
  bool drawn_ = false;
  int logged_tenths_ = 0;
  double start_;
};

}  // namespace brisk::cli
