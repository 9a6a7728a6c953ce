#include "compress/calib_pipeline.h"

#include "backends/cpu/cpu_backend.h"

namespace brisk::calib {

namespace {

void keep_matrices(CalibratedModel& out, std::map<std::string, UnpackedMatrix>&& matrices) {
  for (auto& [name, q] : matrices) out.matrices[name] = std::move(q);
}

}  // namespace

const char* method_name(Method m) {
  switch (m) {
    case Method::Rtn: return "rtn";
    case Method::Gptq: return "gptq";
    case Method::Awq: return "awq";
    case Method::SmoothQuant: return "smoothquant";
  }
  return "?";
}

Result<Method> parse_method(const std::string& name) {
  for (Method m : {Method::Rtn, Method::Gptq, Method::Awq, Method::SmoothQuant})
    if (name == method_name(m)) return m;
  return make_error("unknown quantization method '" + name + "' (rtn, gptq, awq, smoothquant)");
}

Result<CalibratedModel> quantize_with_calibration(const std::filesystem::path& model_dir,
                                                  const std::vector<int32_t>& calibration_tokens,
                                                  const PipelineOptions& options) {
  CpuBackend cpu(options.threads);
  CalibratingBackend capture(cpu);
  CalibrationOptions calibration = options.calibration;
  BRISK_ASSIGN(model, load_for_calibration(model_dir, capture, calibration));
  CalibratedModel out;
  out.weights = FloatWeights::copy_from(*model);
  out.weights.bind_to(*model);  // calibration sees the weights the methods rewrite

  switch (options.method) {
    case Method::Rtn: {
      BRISK_ASSIGN(q, rtn_quantize(out.weights, calibrated_matrices(*model), options.spec));
      keep_matrices(out, std::move(q));
      return out;
    }
    case Method::Gptq: {
      GptqOptions gptq = options.gptq;
      gptq.threads = options.threads;
      if (options.sequential == Sequential::Off) {
        BRISK_ASSIGN(stats, calibrate(*model, capture, calibration_tokens, calibration));
        out.calibration_tokens = stats.tokens;
        BRISK_ASSIGN(q, gptq_quantize(out.weights, stats, options.spec, gptq));
        keep_matrices(out, std::move(q));
        return out;
      }
      // Layer by layer: each layer's Hessians come from inputs that already went through the
      // quantized layers before it.
      for (int64_t l = 0; l < model->config().n_layers; ++l) {
        calibration.select = [l](const TensorSpec& spec) { return spec.layer == l; };
        BRISK_ASSIGN(stats, calibrate(*model, capture, calibration_tokens, calibration));
        out.calibration_tokens = stats.tokens;
        BRISK_ASSIGN(q, gptq_quantize(out.weights, stats, options.spec, gptq));
        keep_matrices(out, std::move(q));
      }
      return out;
    }
    case Method::Awq: {
      BRISK_ASSIGN(stats, calibrate(*model, capture, calibration_tokens, calibration));
      out.calibration_tokens = stats.tokens;
      BRISK_ASSIGN(r, awq_quantize(cpu, out.weights, model->config(), stats, options.spec, options.awq));
      keep_matrices(out, std::move(r.matrices));
      for (const auto& [name, g] : r.groups) out.alphas[name] = g.alpha;
      return out;
    }
    case Method::SmoothQuant: {
      if (calibration.sample_rows == 0) calibration.sample_rows = 1024;
      BRISK_ASSIGN(stats, calibrate(*model, capture, calibration_tokens, calibration));
      out.calibration_tokens = stats.tokens;
      BRISK_ASSIGN(r, smoothquant(cpu, out.weights, model->config(), stats, options.smoothquant));
      keep_matrices(out, std::move(r.matrices));
      out.alphas = std::move(r.alpha);
      return out;
    }
  }
  return make_error("unknown quantization method");
}

}  // namespace brisk::calib
