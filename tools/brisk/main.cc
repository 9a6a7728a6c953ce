// brisk: run, measure and compress large language models. One subcommand per file.
#include <cstdio>
#include <exception>

#include "common.h"
#include "parallel/mpi_communicator.h"

int main(int argc, char** argv) {
  using namespace brisk::cli;
  CLI::App app{"brisk: run Hugging Face LLMs (Llama, Mistral, Qwen2, GPT-2) exactly and fast.\n"
               "Run 'brisk <command> --help' for a command's options."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "brisk 0.1.0");
  const Command commands[] = {add_generate(app), add_tokenize(app), add_perplexity(app),
                              add_bench(app),    add_synth(app),    add_inspect(app),
                              add_quantize(app), add_prune(app), add_lowrank(app), add_export(app), add_optimize(app), add_serve(app), add_embed(app), add_classify(app),
                              add_chat(app), add_train(app), add_distill(app)};
  if (const int code = parse_command_line(app, argc, argv); code >= 0) return code;
  for (const Command& c : commands) {
    if (!c.app->parsed()) continue;
    int code = 1;
    try {
      code = c.run();
    } catch (const std::exception& e) {  // a last resort: every expected failure is an error value
      std::fprintf(stderr, "brisk: error: %s\n", e.what());
    }
    // A failed rank of an MPI job ends the others, which may be waiting for it in a collective.
    if (code != 0) brisk::abort_mpi_job(code);
    return code;
  }
  return 1;
}
