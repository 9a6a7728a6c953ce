// brisk synth: a random-weight model folder in the shape of a published model.
#include <memory>

#include "common.h"
#include "runtime/synth.h"

namespace brisk::cli {

Command add_synth(CLI::App& app) {
  struct Flags {
    SynthOptions synth;
    std::string out, dtype = "bf16", shape;
  };
  auto f = std::make_shared<Flags>();
  std::string shapes;
  for (const auto& s : synth_shape_names()) shapes += (shapes.empty() ? "" : ", ") + s;
  CLI::App* sub = app.add_subcommand("synth", "Write a Hugging Face folder with random weights (and a byte-level\n"
                                              "tokenizer) in the exact shape of a published model, for benchmarks");
  sub->add_option("--shape", f->shape, "One of: " + shapes)->required();
  sub->add_option("-o,--out", f->out, "Output folder (must not exist or be empty)")->required();
  sub->add_option("--dtype", f->dtype, "Weight dtype: bf16, f16 or f32")->capture_default_str()->check(CLI::IsMember({"bf16", "f16", "f32"}));
  sub->add_option("--seed", f->synth.seed, "Random seed")->capture_default_str();
  return {sub, [f]() {
    f->synth.shape = f->shape;
    f->synth.out = f->out;
    f->synth.dtype = f->dtype == "f32" ? DType::F32 : f->dtype == "f16" ? DType::F16 : DType::BF16;
    ProgressBar bar("synth " + f->shape);
    Status st = synthesize_model(f->synth, [&](uint64_t done, uint64_t total) {
      bar.update(double(done), double(total), std::to_string(done >> 20) + " MiB");
    });
    bar.finish();
    if (!st) return fail(st.error());
    std::printf("wrote %s (%s, %s)\n", f->out.c_str(), f->shape.c_str(), f->dtype.c_str());
    return 0;
  }};
}

}  // namespace brisk::cli
