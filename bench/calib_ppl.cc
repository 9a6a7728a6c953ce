// Perplexity of fake-quantized models: fp32, then each method's dequantized weights bound into
// the same engine (RTN, GPTQ, AWQ; SmoothQuant's int8 weights with fp32 activations on request).
// Prints one JSON object. Reproduces the calibrated-quantization figures in docs/RESULTS.md:
//
//   calib_ppl ../shared/models/sotu-llama --calib ../shared/data/text/sotu-train.txt
//             --test ../shared/data/text/sotu-test.txt --ctx 512 --calib-tokens 65536
//   (one command line)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include "compress/calib_pipeline.h"
#include "core/mapped_file.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"

namespace {

using namespace brisk;

struct Args {
  std::string model, calib_file, test_file, methods = "rtn,gptq,awq";
  int64_t ctx = 512, calib_tokens = 65536, windows = 0;
  std::string scheme = "w4";
  int threads = 0;
  int64_t group = 128;
  bool sym = false, act_order = false, one_pass = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "%s\nusage: calib_ppl MODEL_DIR --calib FILE --test FILE [--ctx N] [--calib-tokens N]\n"
               "       [--windows N (0: all)] [--scheme w4|w8] [--group G] [--sym] [--act-order] [--one-pass]\n"
               "       [--methods rtn,gptq,awq,smoothquant] [--threads N]\n", why);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + f).c_str());
      return argv[++i];
    };
    if (f == "--calib") a.calib_file = value();
    else if (f == "--test") a.test_file = value();
    else if (f == "--methods") a.methods = value();
    else if (f == "--ctx") a.ctx = std::stoll(value());
    else if (f == "--calib-tokens") a.calib_tokens = std::stoll(value());
    else if (f == "--windows") a.windows = std::stoll(value());
    else if (f == "--scheme") a.scheme = value();
    else if (f == "--group") a.group = std::stoll(value());
    else if (f == "--threads") a.threads = std::stoi(value());
    else if (f == "--sym") a.sym = true;
    else if (f == "--act-order") a.act_order = true;
    else if (f == "--one-pass") a.one_pass = true;
    else if (!f.empty() && f[0] != '-' && a.model.empty()) a.model = f;
    else usage(("unknown argument " + f).c_str());
  }
  if (a.model.empty() || a.calib_file.empty() || a.test_file.empty()) usage("missing arguments");
  return a;
}

Result<std::vector<int32_t>> tokens_of(const Engine& engine, const std::string& file) {
  BRISK_ASSIGN(text, read_text_file(file));
  return engine.tokenizer().encode(text, AddSpecial::No);
}

int run(const Args& a) {
  EngineOptions eo;
  eo.model_dir = a.model;
  eo.context = a.ctx;
  eo.max_rows = std::min<int64_t>(a.ctx, 512);
  eo.backend.threads = a.threads;
  auto engine = Engine::open(eo);
  if (!engine) return std::fprintf(stderr, "%s\n", engine.error().message.c_str()), 1;
  Engine& e = *engine.value();
  auto test = tokens_of(e, a.test_file);
  auto calib = tokens_of(e, a.calib_file);
  if (!test || !calib) return std::fprintf(stderr, "cannot read the text files\n"), 1;
  if (a.windows > 0 && int64_t(test->size()) > a.windows * a.ctx) test->resize(size_t(a.windows * a.ctx));

  nlohmann::json out;
  out["model"] = a.model;
  out["test"] = a.test_file;
  out["ctx"] = a.ctx;
  out["scheme"] = {{"name", a.scheme}, {"group", a.group}, {"symmetric", a.sym}, {"act_order", a.act_order},
                   {"gptq_sequential", !a.one_pass}};
  auto measure = [&](calib::FloatWeights& weights) -> nlohmann::json {
    weights.bind_to(e.model());
    auto r = perplexity(e, test.value(), a.ctx);
    if (!r) return {{"error", r.error().message}};
    return {{"ppl", r->ppl}, {"scored", r->scored}, {"seconds", r->seconds}};
  };
  calib::FloatWeights fp32 = calib::FloatWeights::copy_from(e.model());
  out["fp32"] = measure(fp32);
  std::fprintf(stderr, "fp32 %s\n", out["fp32"].dump().c_str());

  size_t at = 0;
  while (at <= a.methods.size()) {
    const size_t comma = std::min(a.methods.find(',', at), a.methods.size());
    const std::string name = a.methods.substr(at, comma - at);
    at = comma + 1;
    if (name.empty()) continue;
    auto method = calib::parse_method(name);
    if (!method) return std::fprintf(stderr, "%s\n", method.error().message.c_str()), 1;
    calib::PipelineOptions o;
    o.method = method.value();
    auto scheme = parse_quant_scheme(a.scheme);
    if (!scheme) return std::fprintf(stderr, "--scheme: %s\n", scheme.error().message.c_str()), 1;
    o.spec = {scheme.value(), a.group, a.sym ? Symmetry::Symmetric : Symmetry::Asymmetric};
    o.gptq.act_order = a.act_order ? calib::ActOrder::On : calib::ActOrder::Off;
    o.sequential = a.one_pass ? calib::Sequential::Off : calib::Sequential::On;
    o.calibration.window = std::min<int64_t>(a.ctx, 512);
    o.calibration.max_tokens = a.calib_tokens;
    o.threads = a.threads;
    const auto t0 = std::chrono::steady_clock::now();
    auto q = calib::quantize_with_calibration(a.model, calib.value(), o);
    if (!q) return std::fprintf(stderr, "%s: %s\n", name.c_str(), q.error().message.c_str()), 1;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    nlohmann::json m = measure(q->weights);
    fp32.bind_to(e.model());  // q's weights are about to go
    m["quantize_seconds"] = seconds;
    m["calibration_tokens"] = q->calibration_tokens;
    if (o.method == calib::Method::SmoothQuant) m["note"] = "int8 per-channel weights, fp32 activations";
    if (!q->alphas.empty()) m["alphas"] = q->alphas;
    out[name] = m;
    std::fprintf(stderr, "%s %s\n", name.c_str(), m.dump().c_str());
  }
  const double base = out["fp32"].value("ppl", 0.0);
  for (const char* name : {"rtn", "gptq", "awq"})
    if (out.contains(name) && out[name].contains("ppl"))
      out[name]["vs_fp32_percent"] = (out[name]["ppl"].get<double>() / base - 1) * 100;
  for (const char* name : {"gptq", "awq"})
    if (out.contains(name) && out.contains("rtn") && out[name].contains("ppl"))
      out[name]["rtn_gap_closed"] = (out["rtn"]["ppl"].get<double>() - out[name]["ppl"].get<double>()) /
                                    (out["rtn"]["ppl"].get<double>() - base);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(parse(argc, argv)); }
