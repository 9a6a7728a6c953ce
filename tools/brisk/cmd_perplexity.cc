// brisk perplexity: exp(mean NLL) of a text file over consecutive context windows.
#include <memory>

#include "common.h"
#include "core/mapped_file.h"
#include "runtime/perplexity.h"
#include "tokenizer/utf8.h"

namespace brisk::cli {

Command add_perplexity(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    std::string model, file;
    int64_t ctx = 512;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "perplexity",
      "Perplexity of a text file: tokenized whole without special tokens, cut into consecutive\n"
      "windows of --ctx tokens (the last partial one dropped); in each window positions\n"
      "0..ctx-2 predict tokens 1..ctx-1; ppl = exp(mean NLL over all scored tokens)");
  add_model_option(sub, f->model, "Model folder or .gguf file");
  sub->add_option("-f,--file", f->file, "Text file (UTF-8; a leading byte-order mark is skipped; at most 1 GiB)")->required();
  sub->add_option("--ctx", f->ctx, "Window length in tokens")->capture_default_str()->check(in_range(2, 1 << 20));
  add_engine_flags(sub, f->engine.backend);
  add_parallel_flags(sub, f->engine);
  add_kv_dtype_flag(sub, f->engine.kv_dtype);
  sub->add_flag("--json", f->json,
                "Print {\"ppl\", \"tokens\", \"windows\", \"scored\", \"seconds\", \"nll_sum\", \"kv_dtype\"}");
  return {sub, [f]() {
    f->engine.model_dir = f->model;
    f->engine.context = f->ctx;
    f->engine.max_rows = std::min<int64_t>(f->ctx, 512);
    auto text = read_text_file(f->file);
    if (!text) return fail(text.error());
    if (auto valid = utf8::require_valid(text.value(), f->file); !valid) return fail(valid.error());
    show_load_progress(f->engine);
    auto engine = open_engine(f->engine);
    if (!engine) return fail(engine.error());
    if (!engine.value()) return 0;  // a follower rank
    const auto tokens = engine.value()->tokenizer().encode(text.value(), AddSpecial::No);
    ProgressBar bar("perplexity");
    auto result = perplexity(*engine.value(), tokens, f->ctx, [&](int64_t done, int64_t total) {
      bar.update(double(done), double(total), std::to_string(done) + "/" + std::to_string(total) + " windows");
    });
    bar.finish();
    if (!result) return fail(result.error());
    const PerplexityResult& r = result.value();
    if (f->json) {
      print_json({{"ppl", r.ppl}, {"tokens", r.tokens}, {"windows", r.windows}, {"scored", r.scored},
                  {"seconds", r.seconds}, {"nll_sum", r.nll_sum},
                  {"kv_dtype", kv_dtype_name(engine.value()->kv_dtype())}});
    } else {
      std::printf("ppl %.4f over %lld scored tokens (%lld windows of %lld; %lld tokens in file) in %.1f s\n", r.ppl,
                  (long long)r.scored, (long long)r.windows, (long long)f->ctx, (long long)r.tokens, r.seconds);
    }
    return 0;
  }};
}

}  // namespace brisk::cli
