#include "compress/calibrated_quantize.h"

#include "compress/calib_pipeline.h"
#include "formats/model_folder.h"

namespace brisk {

Result<MethodOverrides> calibrated_overrides(const CalibratedQuantizeOptions& o) {
  BRISK_ASSIGN(method, calib::parse_method(o.method));
  BRISK_TRY(validate_quant_spec(o.spec));
  const bool four_bit_method = method == calib::Method::Gptq || method == calib::Method::Awq;
  if (four_bit_method && o.spec.scheme != QuantScheme::W4)
    return make_error("--method " + o.method + " quantizes with the w4 scheme (got --scheme " +
                      std::string(quant_scheme_name(o.spec.scheme)) + ")");
  if (method == calib::Method::SmoothQuant && o.spec.scheme != QuantScheme::W8A8)
    return make_error("--method smoothquant needs --scheme w8a8 (int8 weights and activations)");
  if (method == calib::Method::Rtn) return MethodOverrides{};
  BRISK_TRY(require_float_model(o.model_dir, "quantize --method " + o.method));  // calibrates whole matrices

  calib::PipelineOptions p;
  p.method = method;
  p.spec = o.spec;
  p.calibration.max_tokens = o.max_tokens;
  p.threads = o.threads;
  BRISK_ASSIGN(result, calib::quantize_with_calibration(o.model_dir, o.calibration_tokens, p));

  MethodOverrides out;
  for (const std::string& name : result.weights.names()) out.values[name] = result.weights.at(name);
  if (!four_bit_method) return out;
  for (const auto& [name, m] : result.matrices) out.matrices[name] = calib::pack(m);
  return out;
}

}  // namespace brisk
