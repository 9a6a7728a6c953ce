// SmoothQuant (Xiao et al. 2022, "SmoothQuant: Accurate and Efficient Post-Training Quantization
// for Large Language Models"): for W8A8, move activation outliers into the weights. Per input
// channel j of the matrices behind one norm,
//   s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)     (max|W_j| over all those matrices' column j)
// X is divided by s (folded into the norm's weight and bias), W's columns multiplied by s: the
// fp32 model is unchanged, the activations are flatter and quantize per token with less error.
//
// Choices made here:
//  - Only norm-fed inputs are smoothed (q/k/v behind input_layernorm, gate/up behind
//    post_attention_layernorm; GPT-2's c_attn and c_fc), as in the paper; o_proj and down_proj are
//    quantized unsmoothed.
//  - alpha is searched per group on alpha_min..alpha_max by the simulated W8A8 output error on the
//    captured activation samples: int8 per-token (absmax) activations times int8 per-output-channel
//    (absmax) weights, against the fp32 product.
//  - Output: smoothed weights quantized int8 per output channel, symmetric; activations are
//    quantized per token at run time (fake_quantize_rows simulates that).
#pragma once

#include <map>
#include <string>

#include "compress/calib_grid.h"
#include "compress/calib_weights.h"
#include "compress/calibration.h"

namespace brisk::calib {

struct SmoothQuantOptions {
  float alpha_min = 0.3f, alpha_max = 0.9f, alpha_step = 0.05f;
};

// The weights' quantization: the w8a8 scheme's (int8 per output channel, symmetric).
inline const QuantSpec kSmoothQuantWeights{QuantScheme::W8A8, 0, Symmetry::Symmetric};

struct SmoothQuantResult {
  std::map<std::string, UnpackedMatrix> matrices;  // every calibrated matrix, int8 per channel
  std::map<std::string, float> alpha;               // per group, by its first consumer
  std::map<std::string, std::vector<float>> scales; // per group s, by its first consumer
};

// s for one group from max|X_j| and max|W_j| per channel.
std::vector<float> smoothing_scales(const std::vector<float>& act_max, const std::vector<float>& weight_max,
                                    float alpha);

// Rounds each row of x [rows, k] in place to what a W8A8 kernel multiplies: int8 per token,
// symmetric (quantize_activation_row_u8, the runtime's own activation quantizer).
void fake_quantize_rows(float* x, int64_t rows, int64_t k);

// Searches, folds and quantizes the whole model. Needs activation samples
// (CalibrationOptions::sample_rows > 0). `backend` computes the products (a CPU backend).
Result<SmoothQuantResult> smoothquant(Backend& backend, FloatWeights& weights, const ModelConfig& config,
                                      const CalibrationStats& stats, const SmoothQuantOptions& options = {});

}  // namespace brisk::calib
