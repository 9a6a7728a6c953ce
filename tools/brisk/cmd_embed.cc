// brisk embed / brisk classify: encoder models (BERT) over texts.
#include <cstdio>
#include <memory>
#include <sstream>

#include "common.h"
#include "core/mapped_file.h"
#include "runtime/embedding.h"

namespace brisk::cli {

namespace {

// -p TEXT (repeatable) and -f FILE (one text per non-empty line), in that order.
Result<std::vector<std::string>> input_texts(const std::vector<std::string>& prompts, const std::string& file) {
  std::vector<std::string> texts = prompts;
  if (!file.empty()) {
    BRISK_ASSIGN(content, read_text_file(file));
    std::istringstream lines(content);
    for (std::string line; std::getline(lines, line);)
      if (!line.empty()) texts.push_back(line);
  }
  if (texts.empty()) return make_error("no input: give -p TEXT or -f FILE (one text per line)");
  return texts;
}

// Each text's tokens (special tokens added), checked against the context; errors name the input.
Result<std::vector<std::vector<int32_t>>> input_tokens(Engine& engine, const std::vector<std::string>& texts) {
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto tokens = encoder_tokens(engine, texts[i]);
    if (!tokens) return make_error("input " + std::to_string(i) + ": " + tokens.error().message);
    out.push_back(std::move(*tokens));
  }
  return out;
}

}  // namespace

Command add_embed(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    std::string model, file, pooling;
    std::vector<std::string> prompts;
    bool normalize = false, no_normalize = false, json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "embed",
      "Sentence embeddings: an encoder's (BertModel) last hidden states, or a decoder's final norm\n"
      "output, pooled (mean, [CLS] or last token) and optionally L2-normalized. Defaults come from\n"
      "the folder's sentence-transformers files (1_Pooling/config.json, modules.json) or a GGUF's\n"
      "pooling_type (normalized, as llama.cpp does), else mean for encoders and the last token for\n"
      "decoders, unnormalized");
  sub->add_option("-m,--model", f->model, "Model folder or .gguf file")->required();
  sub->add_option("-p,--prompt", f->prompts, "Text to embed (repeatable)");
  sub->add_option("-f,--file", f->file, "Text file: one text per line");
  sub->add_option("--pooling", f->pooling, "mean, cls or last (default: the model's sentence-transformers config)");
  auto* norm = sub->add_flag("--normalize", f->normalize, "L2-normalize (default: as the model's config says)");
  sub->add_flag("--no-normalize", f->no_normalize, "Do not normalize")->excludes(norm);
  add_engine_flags(sub, f->engine.backend);
  sub->add_flag("--json", f->json,
                "Print {\"pooling\", \"normalize\", \"dimensions\", \"data\": [{\"index\", \"tokens\", \"embedding\"}]}");
  return {sub, [f]() {
    auto texts = input_texts(f->prompts, f->file);
    if (!texts) return fail(texts.error());
    f->engine.model_dir = f->model;
    f->engine.decoder_output = ModelOutput::HiddenStates;  // decoders embed with their final norm's output
    show_load_progress(f->engine);
    auto engine = Engine::open(f->engine);
    if (!engine) return fail(engine.error());
    auto pooling = read_pooling_config(f->model, default_pooling(engine.value()->model()));
    if (!pooling) return fail(pooling.error());
    if (!f->pooling.empty()) {
      auto p = parse_pooling(f->pooling);
      if (!p) return fail(p.error().message + " (--pooling)");
      pooling->pooling = *p;
    }
    if (f->normalize) pooling->normalize = true;
    if (f->no_normalize) pooling->normalize = false;
    auto inputs = input_tokens(*engine.value(), *texts);
    if (!inputs) return fail(inputs.error());
    Json data = Json::array();
    for (size_t i = 0; i < inputs->size(); ++i) {
      auto e = embed(*engine.value(), (*inputs)[i], *pooling);
      if (!e) return fail(e.error());
      if (f->json) {
        data.push_back({{"index", i}, {"tokens", e->tokens}, {"embedding", e->vector}});
      } else {
        for (size_t k = 0; k < e->vector.size(); ++k) std::printf(k ? " %.7g" : "%.7g", double(e->vector[k]));
        std::printf("\n");
      }
    }
    if (f->json)
      print_json({{"pooling", pooling_name(pooling->pooling)}, {"normalize", pooling->normalize},
                  {"dimensions", engine.value()->model().output_width()}, {"data", data}});
    return 0;
  }};
}

Command add_classify(CLI::App& app) {
  struct Flags {
    EngineOptions engine;
    std::string model, file;
    std::vector<std::string> prompts;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "classify", "Sequence classification (BertForSequenceClassification): label logits and\n"
                  "probabilities per text, labels from config.json's id2label");
  sub->add_option("-m,--model", f->model, "Model folder")->required();
  sub->add_option("-p,--prompt", f->prompts, "Text to classify (repeatable)");
  sub->add_option("-f,--file", f->file, "Text file: one text per line");
  add_engine_flags(sub, f->engine.backend);
  sub->add_flag("--json", f->json,
                "Print {\"data\": [{\"index\", \"tokens\", \"label\", \"scores\": [{\"label\", \"logit\", \"probability\"}]}]}");
  return {sub, [f]() {
    auto texts = input_texts(f->prompts, f->file);
    if (!texts) return fail(texts.error());
    f->engine.model_dir = f->model;
    show_load_progress(f->engine);
    auto engine = Engine::open(f->engine);
    if (!engine) return fail(engine.error());
    auto inputs = input_tokens(*engine.value(), *texts);
    if (!inputs) return fail(inputs.error());
    Json data = Json::array();
    for (size_t i = 0; i < inputs->size(); ++i) {
      auto c = classify(*engine.value(), (*inputs)[i]);
      if (!c) return fail(c.error());
      size_t best = 0;
      Json scores = Json::array();
      for (size_t k = 0; k < c->logits.size(); ++k) {
        if (c->logits[k] > c->logits[best]) best = k;
        scores.push_back({{"label", c->labels[k]}, {"logit", c->logits[k]}, {"probability", c->probabilities[k]}});
      }
      if (f->json)
        data.push_back({{"index", i}, {"tokens", c->tokens}, {"label", c->labels[best]}, {"scores", scores}});
      else
        std::printf("%s\t%.4f\n", c->labels[best].c_str(), double(c->probabilities[best]));
    }
    if (f->json) print_json({{"data", data}});
    return 0;
  }};
}

}  // namespace brisk::cli
