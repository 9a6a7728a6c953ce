// A loaded model: its config, its weights bound to memory-mapped tensors, and a forward pass that
// calls the backend's ops over preallocated activations.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "formats/weight_store.h"
#include "models/kv_cache.h"
#include "ops/backend.h"

namespace brisk {

struct ModelOptions {
  int64_t max_rows = 512;  // the most tokens one forward call processes (prefill chunk)
  int64_t context = 0;     // positions to support; 0: min(model maximum, kDefaultContext)
};
// Long-context models (Llama 3.1: 131072) would otherwise allocate huge caches by default.
constexpr int64_t kDefaultContext = 4096;

enum class LogitRows { None, Last, All };  // which rows of a forward call need logits

// How a checkpoint tensor maps onto a weight slot.
enum class TensorKind {
  Matrix,            // [out, in] used in place by matmul
  Embedding,         // [vocab, d] used in place, read one row per token
  TransposedMatrix,  // stored [in, out] (GPT-2's Conv1D); transposed once at load
  Vector,            // norm weights and biases: converted to fp32 at load (tiny)
};
enum class Presence { Required, Optional };

struct TensorSpec {
  std::string name;            // Hugging Face name
  std::vector<int64_t> shape;  // as stored in the checkpoint
  TensorKind kind;
  Presence presence = Presence::Required;
};

// Each architecture lists its tensors once (GUIDE rule 2); loading, synth and export all walk it.
using TensorVisitor = std::function<void(const TensorSpec& spec, Tensor& slot)>;

class Model {
 public:
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  int64_t max_rows() const { return max_rows_; }
  int64_t context() const { return context_; }  // positions this instance can run (<= max_context)

  // Runs tokens[0..n) at positions start_pos..start_pos+n-1 of the sequence held in `cache`
  // (n <= max_rows()) and writes logits for the last row ([vocab]), all rows ([n, vocab]) or none.
  virtual void forward(const int32_t* tokens, int64_t n, int64_t start_pos, KvCache& cache,
                       LogitRows which, float* logits) = 0;

  // Walks every weight slot of this model with its checkpoint spec.
  virtual void visit_tensors(const TensorVisitor& visit) = 0;
  // The matrix that maps hidden states to logits (the embedding table when tied).
  virtual const Tensor& output_head() const = 0;

  KvCache make_cache(int64_t capacity) const {
    return KvCache(backend_, config_.n_layers, capacity, config_.n_kv_heads, config_.head_dim);
  }
  // The largest context this model supports (position table / sliding window).
  int64_t max_context() const;
  // What one token costs in the matrix products: weight bytes read (every matrix once, the
  // head once even when tied, one embedding row) and multiply-adds.
  struct TokenCost {
    uint64_t weight_bytes = 0;
    uint64_t multiply_adds = 0;
  };
  TokenCost cost_per_token();
  uint64_t parameter_count();

 protected:
  Model(ModelConfig config, Backend& backend, const ModelOptions& options);
  // Binds every slot to the store's tensors; errors name the tensor and file; every tensor in the
  // store must be claimed.
  Status bind(const WeightStore& store);
  float* vec(const Tensor& t) const { return t.as<float>(); }
  const float* optional_vec(const Tensor& t) const { return t.empty() ? nullptr : t.as<float>(); }
  Buffer activation(int64_t per_row) { return backend_.allocate(size_t(max_rows_ * per_row)); }
  // Final norm output rows -> logits on the host ([rows, vocab]).
  void project_to_logits(const float* normed, int64_t rows, float* logits_host);

  ModelConfig config_;
  Backend& backend_;
  int64_t max_rows_;
  int64_t context_;

 private:
  std::vector<std::unique_ptr<uint8_t[]>> owned_;  // converted vectors and transposed matrices
  Buffer logits_;                                   // [max_rows, vocab] in backend memory
  std::shared_ptr<const WeightStore> store_;
  friend Result<std::unique_ptr<Model>> load_model(const std::filesystem::path&, Backend&,
                                                   const ModelOptions&);
};

// Opens config.json and the safetensors weights of a Hugging Face model folder.
Result<std::unique_ptr<Model>> load_model(const std::filesystem::path& dir, Backend& backend,
                                          const ModelOptions& options = {});

// Architecture constructors (llama.cc, gpt2.cc): weights unbound, activations allocated.
std::unique_ptr<Model> make_llama(const ModelConfig& config, Backend& backend, const ModelOptions& options);
std::unique_ptr<Model> make_gpt2(const ModelConfig& config, Backend& backend, const ModelOptions& options);
std::unique_ptr<Model> make_model(const ModelConfig& config, Backend& backend, const ModelOptions& options);

}  // namespace brisk
