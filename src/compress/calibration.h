// Calibration capture: what GPTQ, AWQ and SmoothQuant need to know about the activations each
// weight matrix sees, gathered by running text through an unmodified model.
//
// A CalibratingBackend wraps a CPU backend, forwards every op to it, and in matmul() adds the
// input rows to the statistics of the weight being multiplied (keyed by the weight's data pointer,
// i.e. the pointer the model actually passes, after the backend's upload() copy). calibrate()
// maps those pointers back to tensor names through Model::visit_tensors.
//
//   CpuBackend cpu(threads);
//   CalibratingBackend capture(cpu);
//   BRISK_ASSIGN(model, load_model(dir, capture, {.max_rows = 512, .context = 512}));
//   BRISK_ASSIGN(stats, calibrate(*model, capture, tokens, {}));
//   const InputStats* in = stats.find("model.layers.0.self_attn.q_proj.weight");
//
// Matrices fed the same activations in consecutive calls (q/k/v, gate/up) share one InputStats.
// Memory: one [k, k] double Hessian per distinct input (8 k^2 bytes); select limits capture to
// some tensors (e.g. one layer at a time) for models where that matters.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/model.h"
#include "ops/forwarding_backend.h"

namespace brisk::calib {

// Statistics of the activations one matmul input carried, over all calibration rows.
struct InputStats {
  int64_t width = 0;            // k: input features
  int64_t rows = 0;             // activation rows (tokens) seen
  std::vector<double> xtx;      // [k, k] sum over rows of x^T x (GPTQ's Hessian is 2 xtx / rows);
                                // empty when captured with InputStatistics::PerChannel
  std::vector<double> abs_sum;  // [k] sum of |x| per input channel (AWQ: mean |x|)
  std::vector<double> sq_sum;   // [k] sum of x^2 per input channel (Wanda: ||X_j||_2 squared)
  std::vector<float> abs_max;   // [k] max |x| per input channel (SmoothQuant)
  std::vector<float> samples;   // [n, k] an evenly strided subsample of the rows (SmoothQuant's search)

  int64_t sample_rows() const { return width ? int64_t(samples.size()) / width : 0; }
  double mean_abs(int64_t i) const { return rows ? abs_sum[size_t(i)] / double(rows) : 0.0; }
};

struct CalibrationStats {
  int64_t tokens = 0;   // calibration tokens run
  int64_t windows = 0;  // forward passes of `window` tokens
  std::map<std::string, std::shared_ptr<InputStats>> by_tensor;  // weight name -> its input

  const InputStats* find(const std::string& tensor_name) const;
};

// What a capture gathers per input: everything, or the per-channel sums alone (no k x k Gram
// matrix: 8 k^2 bytes and a matmul per call saved, for scores that read only mean |x|).
enum class InputStatistics { Full, PerChannel };

struct CalibrationOptions {
  int64_t window = 512;         // tokens per sequence (positions 0..window-1); <= model context
  int64_t max_tokens = 65536;   // calibration tokens used (whole windows spread evenly over the
                                // text); 0: all given
  int64_t min_tokens = 1024;    // fewer tokens than this is an error (too little calibration text)
  int64_t sample_rows = 0;      // raw activation rows kept per input (0: none)
  // Which weights to capture (e.g. one layer); empty: every matrix except the output head.
  std::function<bool(const TensorSpec&)> select;
  InputStatistics statistics = InputStatistics::Full;
  // Rows that run the final norm: None (matmul statistics need no output), or All when a norm
  // observer reads the last layer's output there. The model then outputs hidden states (no head).
  LogitRows final_norm_rows = LogitRows::None;
};

// A Backend that forwards every op to `inner` and, while capturing, records matmul inputs.
// Statistics are summed on the host (a device's x is copied there first; x^T x is the inner
// backend's own product, on its copies of x^T when it is a device). Fused
// products and the fused residual norm run unfused here, so every weight's matmul and every norm
// passes through this wrapper; matrices stay in row-major storage (no backend layouts) for
// FloatWeights.
class CalibratingBackend final : public PerMatrixForwardingBackend {
 public:
  explicit CalibratingBackend(Backend& inner) : PerMatrixForwardingBackend(inner) {}
  // Starts recording for exactly these weight pointers; sample_stride keeps every n-th row.
  void start_capture(std::unordered_map<const void*, std::string> weights, int64_t sample_stride,
                     int64_t sample_cap, InputStatistics statistics = InputStatistics::Full);
  // Stops recording and hands back the statistics by weight name.
  std::map<std::string, std::shared_ptr<InputStats>> finish_capture();
  // Called with every rms_norm / layer_norm input (the residual stream, in a pre-norm decoder)
  // and the norm's weight pointer, before the norm runs; null: none. Layer pruning scores layers
  // by how much they change the stream.
  using NormInputObserver = std::function<void(const float* weight, const float* x, int64_t rows, int64_t d)>;
  void observe_norm_inputs(NormInputObserver observer) { norm_observer_ = std::move(observer); }

  void matmul(const float* x, int64_t m, int64_t k, const Tensor& w, const float* bias,
              float* y) override;
  void rms_norm(const float* x, const float* w, int64_t rows, int64_t d, float eps, float* y) override {
    if (norm_observer_) norm_observer_(w, x, rows, d);
    inner().rms_norm(x, w, rows, d, eps, y);
  }
  void add_rms_norm(float* x, const float* h, const float* w, int64_t rows, int64_t d, float eps, float* y) override {
    Backend::add_rms_norm(x, h, w, rows, d, eps, y);
  }
  void layer_norm(const float* x, const float* w, const float* b, int64_t rows, int64_t d, float eps,
                  float* y) override {
    if (norm_observer_) norm_observer_(w, x, rows, d);
    inner().layer_norm(x, w, b, rows, d, eps, y);
  }

 private:
  void record(const float* x, int64_t m, int64_t k, InputStats& stats);

  bool capturing_ = false;
  int64_t sample_stride_ = 1, sample_cap_ = 0;
  InputStatistics statistics_ = InputStatistics::Full;
  std::unordered_map<const void*, std::string> names_;                   // weight pointer -> name
  std::unordered_map<const void*, std::shared_ptr<InputStats>> stats_;  // weight pointer -> input
  // The previous matmul's input, to recognise q/k/v (gate/up) reading the same activations.
  std::vector<float> last_input_;
  int64_t last_m_ = 0;
  std::shared_ptr<InputStats> last_stats_;
  std::vector<float> transposed_, gram_;  // scratch: x^T [k, m] and x^T x [k, k] in fp32
  std::vector<float> host_input_;         // a device backend's input, copied for the statistics
  NormInputObserver norm_observer_;
};

// Names of the matrices calibration captures by default: every matrix but the output head and
// the embedding tables (select, if given, narrows them further).
std::vector<std::string> calibrated_matrices(Model& model,
                                             const std::function<bool(const TensorSpec&)>& select = {});

// The model in `dir` loaded on `backend` for calibration windows of options.window tokens (rows
// per forward capped at 512, the context at the window; hidden states out when
// options.final_norm_rows asks for rows).
Result<std::unique_ptr<Model>> load_for_calibration(const std::filesystem::path& dir, CalibratingBackend& backend,
                                                    const CalibrationOptions& options);

// Runs tokens through `model` (which must have been loaded on `backend`) in windows and returns
// the statistics of every selected matrix. Errors: too little calibration text, a window longer
// than the model's context.
Result<CalibrationStats> calibrate(Model& model, CalibratingBackend& backend,
                                   const std::vector<int32_t>& tokens,
                                   const CalibrationOptions& options);

}  // namespace brisk::calib
