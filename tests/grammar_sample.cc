// grammar_sample MODEL_DIR SCHEMA.json SEEDS TEMPERATURE [FIRST_SEED] [MAX_TOKENS]
//
// Draws one output per seed from a JSON Schema's grammar over a model's vocabulary, with random
// logits in place of a model: standard normal logits, fresh each step, so whatever structure the
// output has comes from the sampler's grammar mask alone. Prints one JSON line per seed,
//   {"seed":s,"text":"...","complete":bool,"tokens":n,"valid_utf8":bool,"dead_end":bool}
// for tests/grammar_validation_test.py, which checks each text with an outside validator
// (Python's json + jsonschema). complete: the sampler drew EOS or the grammar finished; dead_end:
// the mask allowed no token (an engine bug). Only the tokenizer and config.json are read.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/json_schema.h"
#include "runtime/grammar_cache.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace {

using brisk::Result;

Result<nlohmann::ordered_json> read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) return brisk::make_error("cannot open " + path);
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return brisk::make_error(path + " is not valid JSON");
  return j;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + size_t(n) > s.size()) return false;
    uint32_t cp = n == 1 ? b : b & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += size_t(n);
  }
  return true;
}

struct Args {
  std::string model_dir, schema_path;
  int64_t seeds = 0;
  float temperature = 1.0f;
  uint64_t first_seed = 0;
  int64_t max_tokens = 2000;
};

int run(const Args& args) {
  auto tokenizer = brisk::Tokenizer::load(args.model_dir);
  if (!tokenizer) return std::fprintf(stderr, "%s\n", tokenizer.error().message.c_str()), 1;
  const std::unique_ptr<brisk::Tokenizer>& tok = *tokenizer;
  // The logits' width is the model's (config.json), as the engine's; the tokenizer may name fewer.
  int64_t vocab = tok->vocab_size();
  if (auto config = read_json(args.model_dir + "/config.json"); config && config->contains("vocab_size"))
    vocab = (*config)["vocab_size"].get<int64_t>();
  const std::optional<int32_t> eos = tok->eos_id();
  if (!eos) return std::fprintf(stderr, "%s: the tokenizer names no EOS token\n", args.model_dir.c_str()), 1;

  auto schema = read_json(args.schema_path);
  if (!schema) return std::fprintf(stderr, "%s\n", schema.error().message.c_str()), 1;
  auto gbnf = brisk::grammar::json_schema_gbnf(*schema);
  if (!gbnf) return std::fprintf(stderr, "%s: %s\n", args.schema_path.c_str(), gbnf.error().message.c_str()), 1;
  brisk::GrammarCache cache(*tok, vocab, [&](int32_t id) { return id == *eos; });
  auto grammar = cache.get(*gbnf);
  if (!grammar) return std::fprintf(stderr, "%s: %s\n", args.schema_path.c_str(), grammar.error().message.c_str()), 1;

  std::vector<float> logits(static_cast<size_t>(vocab));
  for (uint64_t seed = args.first_seed; seed < args.first_seed + uint64_t(args.seeds); ++seed) {
    brisk::SamplingParams params;
    params.temperature = args.temperature;
    params.top_k = 0;
    params.top_p = 1.0f;
    params.min_p = 0.0f;
    params.seed = seed;
    params.grammar = *grammar;
    brisk::Sampler sampler(params, vocab);
    std::mt19937 rng(static_cast<uint32_t>(seed * 2654435761u + 1));
    std::normal_distribution<float> normal(0.0f, 1.0f);

    std::string text;
    int32_t previous = -1;
    int64_t tokens = 0;
    bool complete = false, dead_end = false;
    while (tokens < args.max_tokens) {
      for (float& l : logits) l = normal(rng);
      const int32_t token = sampler.sample(logits.data());
      if (token == brisk::kNonFiniteLogits) {  // every logit masked: the grammar allowed nothing
        dead_end = true;
        break;
      }
      ++tokens;
      if (token == *eos) {
        complete = true;
        break;
      }
      text += tok->token_bytes(token, previous);
      previous = token;
      if (sampler.grammar_progress() == brisk::GrammarProgress::Complete) {
        complete = true;
        break;
      }
    }
    const bool utf8 = valid_utf8(text);
    nlohmann::ordered_json line = {{"seed", seed},          {"text", text},    {"complete", complete},
                                   {"tokens", tokens},      {"valid_utf8", utf8}, {"dead_end", dead_end}};
    std::cout << line.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) << '\n';
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5 || argc > 7) {
    std::fprintf(stderr, "usage: %s MODEL_DIR SCHEMA.json SEEDS TEMPERATURE [FIRST_SEED] [MAX_TOKENS]\n", argv[0]);
    return 2;
  }
  Args args;
  args.model_dir = argv[1];
  args.schema_path = argv[2];
  try {
    args.seeds = std::stoll(argv[3]);
    args.temperature = std::stof(argv[4]);
    if (argc > 5) args.first_seed = std::stoull(argv[5]);
    if (argc > 6) args.max_tokens = std::stoll(argv[6]);
  } catch (const std::exception&) {
    std::fprintf(stderr, "SEEDS, TEMPERATURE, FIRST_SEED and MAX_TOKENS must be numbers\n");
    return 2;
  }
  return run(args);
}
