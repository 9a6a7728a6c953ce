// brisk quantize: model folder in, quantized model folder out (library: src/compress).
#include <memory>

#include "common.h"
#include "compress/calib_pipeline.h"
#include "compress/calibrated_quantize.h"
#include "compress/quantize_model.h"
#include "core/mapped_file.h"


namespace brisk::cli {

Command add_quantize(CLI::App& app) {
  struct Flags {
    std::string in, out, scheme, method = "rtn", calib, head = "auto";
    int64_t group = 128, calib_tokens = 65536;
    int threads = 0;
    bool sym = false, asym = false, json = false;
  };
  auto f = std::make_shared<Flags>();
  CLI::App* sub = app.add_subcommand(
      "quantize",
      "Quantize every linear layer of a model (embeddings and norms keep their dtype; lm_head gets at\n"
      "least 8 bits, see --head) and write a model folder with compressed-tensors safetensors\n"
      "(docs/FORMAT.md)");
  sub->add_option("-m,--model", f->in, "Input model folder (unquantized)")->required();
  sub->add_option("-o,--out", f->out, "Output folder (must not exist or be empty)")->required();
  sub->add_option("--scheme", f->scheme,
                  "w8 (int8 per channel), w4 (int4 per group), w8a8 (int8 weights, int8 activations per\n"
                  "token at run time), fp8 (e4m3 per channel), nf4, log2 (4-bit codebooks per group)")
      ->required();
  sub->add_option("--method", f->method,
                  "rtn (round to nearest), gptq or awq (w4, need --calib), smoothquant (w8a8, needs --calib)")
      ->capture_default_str();
  sub->add_option("--calib", f->calib, "Calibration text file (tokenized without special tokens)");
  sub->add_option("--calib-tokens", f->calib_tokens, "Calibration tokens used (whole 512-token windows, spread evenly over the file)")
      ->capture_default_str();
  sub->add_option("-t,--threads", f->threads, "CPU threads for quantizing and calibration (default: all cores)");
  sub->add_option("--group", f->group, "Values per scale for 4-bit schemes (multiple of 128)")->capture_default_str();
  auto* sym = sub->add_flag("--sym", f->sym, "Symmetric absmax scales (default)");
  sub->add_flag("--asym", f->asym, "Asymmetric min/max scales with a zero point (w4 only)")->excludes(sym);
  sub->add_option("--head", f->head,
                  "lm_head (when not tied to the embeddings): auto (the scheme if it has 8 bits, else w8),\n"
                  "keep (its dtype), same (the scheme), w8 (int8 per channel)")
      ->capture_default_str();
  sub->add_flag("--json", f->json, "Print a JSON report");
  return {sub, [f]() {
    auto scheme = parse_quant_scheme(f->scheme);
    if (!scheme) return fail(scheme.error());
    QuantizeModelOptions o;
    o.in = f->in;
    o.out = f->out;
    o.spec.scheme = scheme.value();
    o.spec.group = f->group;
    o.spec.symmetry = f->asym ? Symmetry::Asymmetric : Symmetry::Symmetric;
    auto head = parse_head_policy(f->head);
    if (!head) return fail(head.error());
    o.head = head.value();
    o.threads = f->threads;
    MethodOverrides overrides;
    if (f->method != "rtn") {
      auto method = calib::parse_method(f->method);
      if (!method) return fail(method.error());
      if (f->calib.empty()) return fail("--method " + f->method + " needs calibration text: --calib FILE");
      auto tokens = read_calibration_tokens(f->in, f->calib);
      if (!tokens) return fail(tokens.error());
      CalibratedQuantizeOptions c{f->in, o.spec, f->method, std::move(tokens.value()), f->calib_tokens, f->threads};
      std::fprintf(stderr, "calibrating (%s, %zu tokens of text)...\n", f->method.c_str(), c.calibration_tokens.size());
      auto result = calibrated_overrides(c);
      if (!result) return fail(result.error());
      overrides = std::move(result.value());
      o.overrides = &overrides;
    }
    ProgressBar bar("quantize " + f->scheme);
    auto report = quantize_model(o, [&](int64_t done, int64_t total) {
      bar.update(double(done), double(total), std::to_string(done) + "/" + std::to_string(total) + " matrices");
    });
    bar.finish();
    if (!report) return fail(report.error());
    const QuantizeModelReport& r = report.value();
    if (f->json) {
      print_json({{"scheme", f->scheme}, {"method", f->method}, {"group", f->group}, {"asym", f->asym},
                  {"quantized", r.quantized}, {"kept", r.kept},
                  {"head", r.head_scheme.empty() ? Json(nullptr) : Json(r.head_scheme)}, {"bytes_in", r.bytes_in},
                  {"bytes_out", r.bytes_out}, {"seconds", r.seconds}, {"out", f->out}});
    } else {
      const std::string head = r.head_scheme.empty() ? "" : ", lm_head " + r.head_scheme;
      std::printf("wrote %s: %lld matrices quantized (%s%s), %.1f MiB -> %.1f MiB in %.1f s\n", f->out.c_str(),
                  (long long)r.quantized, f->scheme.c_str(), head.c_str(), double(r.bytes_in) / (1 << 20),
                  double(r.bytes_out) / (1 << 20), r.seconds);
    }
    return 0;
  }};
}

}  // namespace brisk::cli
