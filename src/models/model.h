// A loaded model: its config, its weights bound to memory-mapped tensors, and a forward pass that
// calls the backend's ops over preallocated activations.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/weight_store.h"
#include "models/architecture.h"
#include "models/kv_cache.h"
#include "models/model_config.h"
#include "models/pipeline_stage.h"
#include "models/tensor_parallel.h"
#include "models/tensor_spec.h"
#include "ops/backend.h"
#include "ops/communicator.h"

namespace brisk {

enum class LogitRows { None, Last, All };  // which rows of a forward call need logits
enum class ModelOutput { Logits, HiddenStates, ClassLogits };

struct ModelOptions {
  int64_t max_rows = 512;  // the most tokens one forward call processes (prefill chunk)
  int64_t context = 0;     // positions to support; 0: min(model maximum, kDefaultContext)
  // Decoders: HiddenStates writes the final norm's output rows instead of logits (embeddings
  // with last-token or mean pooling). Encoders output what they are regardless.
  ModelOutput decoder_output = ModelOutput::Logits;
  // Called after each weight is placed, with the bytes placed so far and in all (a progress bar).
  std::function<void(int64_t done_bytes, int64_t total_bytes)> on_load_progress;
  // This process's share of a tensor-parallel model (models/tensor_parallel.h): the model is
  // built from that rank's smaller config and weight slices.
  TensorParallelRank tensor_parallel;
  // This process's stage of a pipeline-parallel model (models/pipeline_stage.h): built from its
  // layers only; Model::connect_pipeline then joins it to the other stages.
  PipelineStage pipeline;
};
// Long-context models (Llama 3.1: 131072) would otherwise allocate huge caches by default.
constexpr int64_t kDefaultContext = 4096;

// One sequence's part of a forward batch: tokens at positions first_pos.., keys and values
// stored through its block table (which covers positions 0..first_pos + n_tokens - 1).
struct SequenceChunk {
  const int32_t* tokens = nullptr;  // [n_tokens], host memory
  int64_t n_tokens = 0;
  int64_t first_pos = 0;
  const int32_t* block_table = nullptr;  // host memory
  int64_t n_blocks = 0;
  LogitRows logits = LogitRows::Last;
};

class Model {
 public:
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  int64_t max_rows() const { return max_rows_; }
  int64_t context() const { return context_; }  // positions this instance can run (<= max_context)

  // Runs several sequences' tokens in one pass (at most max_rows() rows in all) and writes the
  // logits each chunk asks for, chunk after chunk, as rows of [vocab] into logits (host).
  void forward(const std::vector<SequenceChunk>& chunks, KvCache& cache, float* logits);
  // forward() in two halves, for callers that record a pass once and replay it
  // (runtime/decode_runner). prepare() lays the batch out and uploads it into the model's batch
  // buffers in one host->device copy; run_prepared() only enqueues ops and returns the logits rows
  // in backend memory ([prepared_logit_rows(), vocab], valid until the next call). key_bound > 0
  // sizes the attention launch for up to that many keys per sequence (instead of the batch's own
  // most), so that a recording made now serves later, longer steps.
  void prepare(const std::vector<SequenceChunk>& chunks, const KvCache& cache, int64_t key_bound = 0);
  // Called at the start of every prepare() with its arguments (null: none): tensor parallelism's
  // rank 0 sends each batch to the other ranks, which run the same passes (parallel/lockstep.h).
  using BatchObserver = std::function<void(const std::vector<SequenceChunk>& chunks, int64_t key_bound)>;
  void observe_batches(BatchObserver observer) { batch_observer_ = std::move(observer); }
  const float* run_prepared(KvCache& cache);
  int64_t prepared_logit_rows() const { return prepared_logit_rows_; }
  // Pipeline parallelism: `stages` holds one rank per stage (numbered by stage) of this rank's
  // tensor-parallel shard. Each pass then runs as micro-batches (prepare() splits large batches),
  // the residual stream goes from stage to stage, and the last stage returns the logits to the
  // first, whose run_prepared() returns them.
  void connect_pipeline(std::shared_ptr<Communicator> stages);
  // Changes whenever a buffer that run_prepared() touches is reallocated: a recording made before
  // then holds stale pointers.
  uint64_t buffers_epoch() const { return buffers_epoch_; }
  // One sequence that owns the cache's blocks 0.. in order: tokens[0..n) at positions start_pos..
  void forward(const int32_t* tokens, int64_t n, int64_t start_pos, KvCache& cache, LogitRows which,
               float* logits);

  // What a forward pass writes per requested row: vocabulary logits (decoders), or an encoder's
  // last hidden states, or a classifier's label logits (one row per sequence).
  virtual ModelOutput output() const { return decoder_output_; }
  virtual int64_t output_width() const {
    return decoder_output_ == ModelOutput::HiddenStates ? config_.hidden_size : config_.vocab_size;
  }
  virtual std::vector<std::string> output_labels() const { return {}; }  // ClassLogits: label names by id
  virtual bool is_encoder() const { return false; }  // bidirectional: a sequence runs in one call

  // Walks every weight slot of this model with its checkpoint spec.
  virtual void visit_tensors(const TensorVisitor& visit) = 0;
  // The matrix that maps hidden states to logits (the embedding table when tied).
  virtual const Tensor& output_head() const = 0;

  // A cache of at least `positions` token slots.
  KvCache make_cache(int64_t positions, KvDtype dtype = KvDtype::F32) const {
    return KvCache(backend_, config_.n_layers, KvCache::blocks_for(positions), config_.n_kv_heads,
                   config_.head_dim, dtype);
  }
  // The largest context this model supports (position table / sliding window).
  int64_t max_context() const;
  // What one token costs in the matrix products: weight bytes read (every matrix once, the
  // head once even when tied, one embedding row) and multiply-adds, of which the head's.
  struct TokenCost {
    uint64_t weight_bytes = 0;
    uint64_t multiply_adds = 0;
    uint64_t head_multiply_adds = 0;
  };
  TokenCost cost_per_token();
  // Multiply-adds of attention's two products (q k^T and the weighted sum of values) for
  // n_tokens consecutive tokens from position first_pos, each seeing its own and earlier keys.
  uint64_t attention_multiply_adds(int64_t first_pos, int64_t n_tokens) const;
  uint64_t parameter_count();

 protected:
  Model(ModelConfig config, Backend& backend, const ModelOptions& options);

  // The batch of the current forward call, laid out by prepare(): host copies for the ops
  // that take host arrays, backend copies for the rest.
  struct Batch {
    int64_t rows = 0;
    std::vector<int32_t> tokens, positions;  // [rows], host
    std::vector<int32_t> logit_rows;         // rows whose logits the caller wants, host
    const int32_t* tokens_dev = nullptr;     // [rows], backend memory
    const int32_t* positions_dev = nullptr;  // [rows], backend memory
    const int32_t* slots_dev = nullptr;      // [rows] cache slot of each row, backend memory
    const int32_t* logit_rows_dev = nullptr; // [logit_rows.size()], backend memory
    AttentionBatch attention;
  };
  // The architecture's pass over a prepared batch: enqueues ops only (no host copies), ending
  // with project_to_logits for the rows listed in batch.logit_rows (if any).
  virtual void run(const Batch& batch, KvCache& cache) = 0;
  // Pipeline stages after the first: x [rows, hidden] is the residual stream the previous stage
  // sent (true), instead of the architecture embedding the batch's tokens (false).
  bool receive_stage_input(const Batch& batch, float* x);
  // Stages before the last: x goes to the next stage and the pass ends here (true).
  bool send_stage_output(const Batch& batch, const float* x);
  // The rows of x [rows, hidden] whose logits are wanted, gathered in order (x itself when every
  // row is wanted). The caller norms them and hands them to project_to_logits.
  const float* logit_rows(const Batch& batch, const float* x);
  // Final norm output rows -> logits in backend memory ([rows, vocab], the model's logits buffer,
  // returned for architectures that transform them further). With decoder_output HiddenStates
  // the normed rows themselves are the output, and it returns null (nothing to transform).
  float* project_to_logits(const float* normed, int64_t rows);
  // The output buffer run() fills: [requested rows, output_width()] in backend memory.
  float* output_rows() { return logits_.data(); }
  // Binds every slot to the store's tensors; errors name the tensor and file; every tensor in the
  // store must be claimed.
  Status bind(const WeightStore& store, const std::function<void(int64_t, int64_t)>& on_progress = {});
  // Called by bind() once every slot holds its weight: an architecture asks the backend to place
  // matrices that share an input next to each other (Backend::place_adjacent).
  virtual void place_weights() {}
  float* vec(const Tensor& t) const { return t.as<float>(); }
  const float* optional_vec(const Tensor& t) const { return t.empty() ? nullptr : t.as<float>(); }
  Buffer activation(int64_t per_row) { return backend_.allocate(size_t(max_rows_ * per_row)); }

  ModelConfig config_;
  Backend& backend_;
  int64_t max_rows_;
  int64_t context_;
  ModelOutput decoder_output_;

 private:
  std::vector<std::unique_ptr<uint8_t[]>> owned_;  // converted vectors and transposed matrices
  Buffer logits_;                                   // [max_rows, vocab] in backend memory
  Buffer logit_inputs_;                             // rows gathered for the head
  // One micro-batch as prepare() laid it out (a single one without a pipeline): the batch the
  // architecture runs, its host staging and its backend copies, grown when a batch needs more.
  struct PreparedBatch {
    Batch batch;
    std::vector<int32_t> slots, tables;
    std::vector<SequenceSpan> spans;
    // Every per-call array (tokens, positions, slots, logit rows, spans, block tables) packed into
    // one staging vector and one backend buffer: one upload per micro-batch.
    std::vector<int32_t> words;
    Buffer words_dev;
  };
  std::vector<PreparedBatch> prepared_;  // [0, n_prepared_) hold this pass; never shrunk
  size_t n_prepared_ = 0;
  int64_t prepared_logit_rows_ = 0;
  void lay_out(const std::vector<SequenceChunk>& chunks, const KvCache& cache, int64_t key_bound, PreparedBatch& p);
  std::vector<int32_t> identity_table_;  // blocks 0.. for one-sequence callers
  uint64_t buffers_epoch_ = 0;
  PipelineStage pipeline_;
  std::shared_ptr<Communicator> stages_;
  // Grows a backend buffer to at least n floats (counting the reallocation in buffers_epoch_).
  void ensure(Buffer& buffer, size_t n_floats);
  std::shared_ptr<const WeightStore> store_;
  BatchObserver batch_observer_;
  friend Result<std::unique_ptr<Model>> load_model(const std::filesystem::path&, Backend&,
                                                   const ModelOptions&);
};

// A model folder's (or .gguf file's) config and weights as stored, a quantized checkpoint's
// matrices converted to runtime block tensors, sparse storage expanded: what load_model binds,
// and what exporters read.
struct Checkpoint {
  ModelConfig config;
  WeightStore store;
};
Result<Checkpoint> open_checkpoint(const std::filesystem::path& dir);

// Opens config.json and the safetensors weights of a Hugging Face model folder.
Result<std::unique_ptr<Model>> load_model(const std::filesystem::path& dir, Backend& backend,
                                          const ModelOptions& options = {});

// Builds the model config.arch declares (weights unbound, activations allocated).
std::unique_ptr<Model> make_model(const ModelConfig& config, Backend& backend, const ModelOptions& options);

}  // namespace brisk
