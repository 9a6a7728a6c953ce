// The model-level side of the calibrated methods: an fp32 working copy of a model's weights that
// the methods rewrite (scale folding, quantized-then-dequantized matrices), and the map of where a
// per-input-channel scale can be folded, derived from the architecture's tensor roles.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compress/calib_grid.h"
#include "models/model.h"

namespace brisk::calib {

// fp32 copies of every matrix and vector weight of a model (not the embedding tables), by
// checkpoint name, in the layout the model computes with: matrices [out, in] (GPT-2's Conv1D
// weights are already transposed at load).
class FloatWeights {
 public:
  static FloatWeights copy_from(Model& model);
  // Adds (or replaces) one tensor: brisk optimize builds a group's working copy this way.
  void set(const std::string& name, std::vector<float> values, std::vector<int64_t> shape);

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  std::vector<std::string> names() const;
  std::vector<float>& at(const std::string& name);  // BRISK_CHECKs that the name exists
  const std::vector<float>& at(const std::string& name) const;
  const std::vector<int64_t>& shape(const std::string& name) const;
  int64_t rows(const std::string& name) const { return shape(name)[0]; }
  int64_t cols(const std::string& name) const { return shape(name).size() > 1 ? shape(name)[1] : 1; }

  // Points the model's weight slots at these arrays, so the model computes with them. This object
  // must outlive the model's use of them and not be resized meanwhile.
  void bind_to(Model& model);

 private:
  struct Entry {
    std::vector<float> data;
    std::vector<int64_t> shape;
  };
  std::map<std::string, Entry> tensors_;
};

// Where a per-input-channel scale s of some matrices ("consumers", which read the same input) can
// be folded so the model's function is unchanged: the consumers' columns are multiplied by s and
// the producer of their input divides its output channel c by s[c]. The producer is a norm
// (weight and bias scale) or a linear layer whose output rows scale (weight rows and bias).
struct ScaleGroup {
  std::vector<std::string> consumers;  // matrices [*, k] sharing one input
  std::string fold_weight;             // norm weight [k], or the producer matrix
  std::string fold_bias;               // "" when the producer has none
  enum class Producer { Norm, Linear } producer = Producer::Norm;
  int64_t row_offset = 0;              // Linear: first producer row of channel 0 (GPT-2's fused qkv)
  // Consumer channel -> producer channel, when several consumer channels read one producer
  // channel (grouped-query attention: o_proj columns of heads sharing a v head). Empty: identity.
  // Channels mapped together must share one scale.
  std::vector<int64_t> channel_of;
  int64_t channels(int64_t k) const;  // distinct scales (producer channels) for k consumer columns
  // The producer's tensors the scales divide: fold_weight, and fold_bias when there is one.
  std::vector<std::string> folded_tensors() const {
    return fold_bias.empty() ? std::vector<std::string>{fold_weight} : std::vector<std::string>{fold_weight, fold_bias};
  }
};

// The scale groups of every layer, from the roles of a pre-norm block: attention norm -> q/k/v (or
// the fused qkv), v (the v rows of a fused qkv) -> o, MLP norm -> gate/up (or the lone up),
// up (the up rows of a fused gate_up) -> down when the MLP is gated (an ungated MLP's activation
// sits between up and down). With Folds::NormOnly, just the groups fed by a norm (SmoothQuant's).
enum class Folds { All, NormOnly };
// An error for models without pre-norm blocks (BERT).
Result<std::vector<ScaleGroup>> scale_groups(const ModelConfig& config, Folds folds = Folds::All);

// Multiplies the consumers' columns by s and divides the producer's channels by it.
// s has group.channels(k) entries.
void fold_scales(FloatWeights& weights, const ScaleGroup& group, const std::vector<float>& s);

// s expanded to the consumers' input channels.
std::vector<float> expand_scales(const ScaleGroup& group, const std::vector<float>& s, int64_t k);

// Round-to-nearest of the named matrices, each replaced in `weights` by its dequantized values:
// the baseline the calibrated methods are compared with.
Result<std::map<std::string, UnpackedMatrix>> rtn_quantize(FloatWeights& weights,
                                                          const std::vector<std::string>& names,
                                                          const QuantSpec& spec);

}  // namespace brisk::calib
