// brisk tokenize: text -> token ids with the model's own tokenizer.
#include <iostream>
#include <memory>

#include "common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace brisk::cli {

Command add_tokenize(CLI::App& app) {
  struct Flags {
    std::string model, text, file;
    bool add_special = false, json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand("tokenize", "Print the token ids of a text");
  add_model_option(sub, f->model, "Model folder with tokenizer.json or tokenizer.model, or a .gguf file");
  CLI::Option* text = sub->add_option("--text", f->text, "Text to tokenize");
  CLI::Option* file = sub->add_option("-f,--file", f->file,
                                      "Or a UTF-8 text file, read as brisk perplexity reads it (a leading byte-order\n"
                                      "mark skipped; at most 1 GiB)");
  text->excludes(file);
  sub->add_flag("--add-special", f->add_special, "Add BOS/EOS as the tokenizer's template says");
  sub->add_flag("--json", f->json, "Print {\"ids\": [...]}");
  return {sub, [f, text, file]() {
    if (text->count() == 0 && file->count() == 0) return fail("give the text: --text TEXT or --file PATH");
    std::string source = "--text";
    if (file->count() != 0) {
      auto content = read_text_file(f->file);
      if (!content) return fail(content.error());
      f->text = std::move(content.value());
      source = f->file;
    }
    if (auto valid = utf8::require_valid(f->text, source); !valid) return fail(valid.error());
    auto tokenizer = Tokenizer::load(f->model);
    if (!tokenizer) return fail(tokenizer.error());
    auto ids = tokenizer.value()->encode(f->text, f->add_special ? AddSpecial::Yes : AddSpecial::No);
    if (f->json) {
      print_json({{"ids", ids}});
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
      std::cout << std::endl;
    }
    return 0;
  }};
}

}  // namespace brisk::cli
