#include "models/model.h"

#include "core/mapped_file.h"
#include "formats/quantized_checkpoint.h"
#include "formats/sparse_checkpoint.h"
#include "models/gguf_model.h"

#include <algorithm>
#include <cstring>
#include <set>

namespace brisk {

namespace {

bool is_float_weight(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// A checkpoint tensor against its declaration: shape (from config.json) and dtype.
Status check_stored_tensor(const TensorSpec& spec, const StoredTensor& stored) {
  const Tensor& t = stored.tensor;
  const std::string at = stored.file + ": tensor '" + spec.name + "'";
  // Quantized matrices (block dtypes, converted at load) are [out, in]: GPT-2's Conv1D
  // matrices were transposed before quantization.
  const bool quantized = is_block_dtype(t.dtype);
  const bool matrix = spec.kind == TensorKind::Matrix || spec.kind == TensorKind::TransposedMatrix;
  std::vector<int64_t> expected = spec.shape;
  if (quantized && spec.kind == TensorKind::TransposedMatrix) std::swap(expected[0], expected[1]);
  if (t.shape != expected)
    return make_error(at + " has shape " + shape_string(t.shape) + ", expected " + shape_string(expected) +
                      " from config.json");
  if (!is_float_weight(t.dtype) && !(quantized && matrix))
    return make_error(at + " has dtype " + std::string(dtype_name(t.dtype)) +
                      (matrix ? "; weights must be F32, F16, BF16 or a quantized format"
                              : "; embeddings and vectors must be F32, F16 or BF16"));
  return ok_status();
}

// The checkpoint's shapes against the config before the model is built: building allocates
// activations sized by the config, so a config that disagrees with its weights (a corrupt,
// huge hidden_size) must fail here, not in an allocation.
Status check_checkpoint(const ModelConfig& config, const WeightStore& store) {
  for (const TensorSpec& spec : config.arch->tensors(config)) {
    if (const StoredTensor* stored = store.find(spec.name)) BRISK_TRY(check_stored_tensor(spec, *stored));
  }
  return ok_status();
}

// Buffers the reference implementations register but that are not weights.
bool is_ignorable_buffer(const std::string& name) {
  auto ends_with = [&](const char* suffix) {
    size_t n = std::strlen(suffix);
    return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
  };
  return ends_with(".attn.bias") || ends_with(".attn.masked_bias") || ends_with("rotary_emb.inv_freq");
}

}  // namespace

Status Model::bind(const WeightStore& store, const std::function<void(int64_t, int64_t)>& on_progress) {
  std::set<std::string> claimed;
  Status status = ok_status();
  int64_t total_bytes = 0, done_bytes = 0;
  for (const auto& [name, stored] : store.all()) total_bytes += int64_t(stored.tensor.nbytes());
  visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (!status.ok() || !stage_holds(pipeline_, config_, spec)) return;
    const StoredTensor* stored = store.find(spec.name);
    if (!stored) {
      if (spec.presence == Presence::Optional) return;
      status = make_error("missing tensor '" + spec.name + "' (" + store.describe() + ")");
      return;
    }
    claimed.insert(spec.name);
    status = check_stored_tensor(spec, *stored);
    if (!status.ok()) return;
    const Tensor& t = stored->tensor;
    const bool quantized = is_block_dtype(t.dtype);
    const bool matrix = spec.is_matrix();
    const size_t n = size_t(t.numel());
    if (spec.kind == TensorKind::Vector) {
      auto buf = std::make_unique<uint8_t[]>(n * sizeof(float));
      float* f = reinterpret_cast<float*>(buf.get());
      for (size_t i = 0; i < n; ++i) f[i] = load_as_f32(t.data, t.dtype, i) + spec.load_offset;
      slot = backend_.upload(Tensor{f, DType::F32, t.shape});
      owned_.push_back(std::move(buf));
    } else if (spec.kind == TensorKind::TransposedMatrix && !quantized) {
      const int64_t rows = t.shape[0], cols = t.shape[1];
      const size_t es = dtype_size(t.dtype);
      auto buf = std::make_unique<uint8_t[]>(n * es);
      const uint8_t* src = static_cast<const uint8_t*>(t.data);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          std::memcpy(buf.get() + size_t(c * rows + r) * es, src + size_t(r * cols + c) * es, es);
      slot = backend_.upload_matrix(Tensor{buf.get(), t.dtype, {cols, rows}});
      owned_.push_back(std::move(buf));
    } else {
      slot = matrix ? backend_.upload_matrix(t) : backend_.upload(t);
      // The backend made its own copy: drop the mapped pages so memory holds the weights once.
      if (slot.data != t.data) release_mapped_pages(t.data, t.nbytes());
    }
    done_bytes += int64_t(t.nbytes());
    if (on_progress) on_progress(done_bytes, total_bytes);
  });
  BRISK_TRY(status);
  for (const auto& [name, stored] : store.all())
    if (!claimed.count(name) && !is_ignorable_buffer(name))
      return make_error(stored.file + ": unexpected tensor '" + name + "' for model_type '" +
                        config_.model_type + "' (config.json and weights disagree?)");
  place_weights();
  return ok_status();
}

Model::Model(ModelConfig config, Backend& backend, const ModelOptions& options)
    : config_(std::move(config)), backend_(backend), max_rows_(options.max_rows),
      decoder_output_(options.decoder_output), pipeline_(options.pipeline) {
  context_ = options.context > 0 ? std::min(options.context, max_context())
                                 : std::min(max_context(), kDefaultContext);
}

void Model::forward(const int32_t* tokens, int64_t n, int64_t start_pos, KvCache& cache,
                    LogitRows which, float* logits) {
  // The identity block table: this sequence owns every block of the cache, in order.
  if (int64_t(identity_table_.size()) < cache.n_blocks()) {
    identity_table_.resize(size_t(cache.n_blocks()));
    for (size_t b = 0; b < identity_table_.size(); ++b) identity_table_[b] = int32_t(b);
  }
  forward({SequenceChunk{tokens, n, start_pos, identity_table_.data(), cache.n_blocks(), which}}, cache,
          logits);
}

void Model::forward(const std::vector<SequenceChunk>& chunks, KvCache& cache, float* logits) {
  prepare(chunks, cache);
  const float* rows = run_prepared(cache);
  const size_t n = size_t(prepared_logit_rows() * output_width());
  if (n > 0) backend_.copy_to_host(logits, rows, n);
}

namespace {

// Below this many rows a pass is bound by reading the weights, which every micro-batch reads
// again: splitting it only repeats the reads. Decode steps of small batches run whole.
constexpr int64_t kMinMicroBatchRows = 32;
// One micro-batch per stage. Two per stage (5 slots of a quarter batch instead of 3 of a half for
// 2 stages: predicted +17% prefill) measured slower on the 2-vCPU Xeon (tinyllama, 128-token
// prefill, 3 alternating rounds: 18.9 / 16.8 / 20.8 tok/s against 11.4 / 11.6 / 19.2): 32-row
// products run well below the rate of 64-row ones there.

// The chunks in at most `parts` micro-batches of about equal rows, in order. A chunk may be cut
// between tokens: its later part attends to the earlier part's keys, which every stage has stored
// by then (each runs the micro-batches in order), and only the part holding its last token keeps
// LogitRows::Last.
std::vector<std::vector<SequenceChunk>> split_micro_batches(const std::vector<SequenceChunk>& chunks, int64_t parts) {
  int64_t rows = 0;
  for (const SequenceChunk& c : chunks) rows += c.n_tokens;
  parts = std::max<int64_t>(1, std::min(parts, rows / kMinMicroBatchRows));
  if (parts == 1) return {chunks};
  const int64_t per = (rows + parts - 1) / parts;
  std::vector<std::vector<SequenceChunk>> out(1);
  int64_t filled = 0;
  for (const SequenceChunk& c : chunks) {
    for (int64_t done = 0; done < c.n_tokens;) {
      if (filled == per) {
        out.emplace_back();
        filled = 0;
      }
      SequenceChunk piece = c;
      piece.tokens = c.tokens + done;
      piece.first_pos = c.first_pos + done;
      piece.n_tokens = std::min(c.n_tokens - done, per - filled);
      done += piece.n_tokens;
      if (c.logits == LogitRows::Last && done < c.n_tokens) piece.logits = LogitRows::None;
      filled += piece.n_tokens;
      out.back().push_back(piece);
    }
  }
  return out;
}

}  // namespace

void Model::connect_pipeline(std::shared_ptr<Communicator> stages) {
  BRISK_CHECK(stages->size() == pipeline_.stages && stages->rank() == pipeline_.stage,
              "connect_pipeline: the group does not match the stage this model was built as");
  stages_ = std::move(stages);
}

bool Model::receive_stage_input(const Batch& batch, float* x) {
  if (pipeline_.first()) return false;
  stages_->receive(x, batch.rows * config_.hidden_size * int64_t(sizeof(float)), pipeline_.stage - 1);
  return true;
}

bool Model::send_stage_output(const Batch& batch, const float* x) {
  if (pipeline_.last()) return false;
  stages_->send(x, batch.rows * config_.hidden_size * int64_t(sizeof(float)), pipeline_.stage + 1);
  return true;
}

const float* Model::run_prepared(KvCache& cache) {
  if (pipeline_.stages == 1) {
    run(prepared_[0].batch, cache);
    return logits_.data();
  }
  // The first stage posts every micro-batch's logits receive before it sends anything, so the
  // last stage's returns never wait on the first stage's sends (which wait on the second's).
  const int64_t width = output_width();
  const int64_t row_bytes = width * int64_t(sizeof(float));
  int64_t at = 0;
  for (size_t i = 0; i < n_prepared_; ++i) {
    const int64_t rows = int64_t(prepared_[i].batch.logit_rows.size());
    if (pipeline_.first() && rows > 0) stages_->post_receive(logits_.data() + at * width, rows * row_bytes, pipeline_.stages - 1);
    at += rows;
  }
  for (size_t i = 0; i < n_prepared_; ++i) {
    const Batch& b = prepared_[i].batch;
    run(b, cache);
    if (pipeline_.last() && !b.logit_rows.empty())
      stages_->send(logits_.data(), int64_t(b.logit_rows.size()) * row_bytes, 0);
  }
  if (pipeline_.first()) stages_->wait_receives();
  return logits_.data();
}

void Model::ensure(Buffer& buffer, size_t n_floats) {
  if (buffer.size() >= n_floats) return;
  buffer = backend_.allocate(n_floats);
  ++buffers_epoch_;
}

void Model::prepare(const std::vector<SequenceChunk>& chunks, const KvCache& cache, int64_t key_bound) {
  if (batch_observer_) batch_observer_(chunks, key_bound);
  const std::vector<std::vector<SequenceChunk>> parts =
      pipeline_.stages > 1 ? split_micro_batches(chunks, pipeline_.stages) : std::vector<std::vector<SequenceChunk>>{chunks};
  if (prepared_.size() < parts.size()) prepared_.resize(parts.size());
  n_prepared_ = parts.size();
  prepared_logit_rows_ = 0;
  int64_t most_logit_rows = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    lay_out(parts[i], cache, key_bound, prepared_[i]);
    const Batch& b = prepared_[i].batch;
    const int64_t n_logits = int64_t(b.logit_rows.size());
    prepared_logit_rows_ += n_logits;
    if (n_logits > 0 && n_logits != b.rows) most_logit_rows = std::max(most_logit_rows, n_logits);
  }
  // Output buffers sized here, never inside run(): a recorded pass must not allocate.
  if (prepared_logit_rows_ > 0) ensure(logits_, size_t(prepared_logit_rows_ * output_width()));
  if (most_logit_rows > 0) ensure(logit_inputs_, size_t(most_logit_rows * config_.hidden_size));
}

void Model::lay_out(const std::vector<SequenceChunk>& chunks, const KvCache& cache, int64_t key_bound, PreparedBatch& p) {
  Batch& b = p.batch;
  b.tokens.clear();
  b.positions.clear();
  b.logit_rows.clear();
  p.slots.clear();
  p.tables.clear();
  p.spans.clear();
  int64_t max_rows = 0, max_keys = 0;
  for (const SequenceChunk& c : chunks) {
    const int64_t end = c.first_pos + c.n_tokens;
    BRISK_CHECK(c.n_tokens > 0 && c.first_pos >= 0, "forward: empty chunk");
    BRISK_CHECK(end <= context_, "forward: past the context");
    BRISK_CHECK(c.n_blocks * KvCache::kBlockSize >= end, "forward: block table too short");
    const int64_t first_row = int64_t(b.tokens.size());
    p.spans.push_back({int32_t(first_row), int32_t(c.n_tokens), int32_t(c.first_pos), int32_t(p.tables.size())});
    const int64_t used_blocks = KvCache::blocks_for(end);
    for (int64_t i = 0; i < used_blocks; ++i) {
      BRISK_CHECK(c.block_table[i] >= 0 && c.block_table[i] < cache.n_blocks(), "forward: bad block id");
      p.tables.push_back(c.block_table[i]);
    }
    for (int64_t i = 0; i < c.n_tokens; ++i) {
      const int64_t pos = c.first_pos + i;
      b.tokens.push_back(c.tokens[i]);
      b.positions.push_back(int32_t(pos));
      p.slots.push_back(int32_t(c.block_table[pos / KvCache::kBlockSize] * KvCache::kBlockSize +
                                pos % KvCache::kBlockSize));
      if (c.logits == LogitRows::All || (c.logits == LogitRows::Last && i + 1 == c.n_tokens))
        b.logit_rows.push_back(int32_t(first_row + i));
    }
    max_rows = std::max(max_rows, c.n_tokens);
    max_keys = std::max(max_keys, end);
  }
  b.rows = int64_t(b.tokens.size());
  BRISK_CHECK(b.rows > 0 && b.rows <= max_rows_, "forward: row count out of range");
  BRISK_CHECK(key_bound == 0 || key_bound >= max_keys, "forward: key_bound below the batch's keys");

  // One staging vector, one upload: [tokens | positions | slots | logit rows | spans | tables].
  static_assert(sizeof(SequenceSpan) == 4 * sizeof(int32_t));
  std::vector<int32_t>& words = p.words;
  words.clear();
  auto append = [&](const int32_t* from, size_t n) {
    const size_t at = words.size();
    words.insert(words.end(), from, from + n);
    return at;
  };
  const size_t tokens_at = append(b.tokens.data(), b.tokens.size());
  const size_t positions_at = append(b.positions.data(), b.positions.size());
  const size_t slots_at = append(p.slots.data(), p.slots.size());
  const size_t logit_rows_at = append(b.logit_rows.data(), b.logit_rows.size());
  const size_t spans_at = append(reinterpret_cast<const int32_t*>(p.spans.data()), 4 * p.spans.size());
  const size_t tables_at = append(p.tables.data(), p.tables.size());
  // Sized for max_rows rows of one-block sequences at least, so decode steps never regrow it.
  ensure(p.words_dev, std::max(words.size(), size_t(8 * max_rows_ + 64)));
  backend_.copy_to_device(p.words_dev.data(), reinterpret_cast<const float*>(words.data()), words.size());
  const int32_t* dev = reinterpret_cast<const int32_t*>(p.words_dev.data());
  b.tokens_dev = dev + tokens_at;
  b.positions_dev = dev + positions_at;
  b.slots_dev = dev + slots_at;
  b.logit_rows_dev = dev + logit_rows_at;
  AttentionBatch& a = b.attention;
  a.seqs = reinterpret_cast<const SequenceSpan*>(dev + spans_at);
  a.block_tables = dev + tables_at;
  a.host_seqs = p.spans.data();
  a.host_block_tables = p.tables.data();
  a.n_seqs = int64_t(p.spans.size());
  a.n_rows = b.rows;
  a.block_size = KvCache::kBlockSize;
  a.max_rows = max_rows;
  a.max_keys = key_bound > 0 ? key_bound : max_keys;
}

const float* Model::logit_rows(const Batch& batch, const float* x) {
  const int64_t n = int64_t(batch.logit_rows.size()), d = config_.hidden_size;
  bool all_in_order = n == batch.rows;
  for (int64_t i = 0; all_in_order && i < n; ++i) all_in_order = batch.logit_rows[size_t(i)] == i;
  if (all_in_order) return x;
  const Tensor rows{const_cast<float*>(x), DType::F32, {batch.rows, d}, backend_.device()};
  backend_.gather_rows(rows, batch.logit_rows_dev, n, logit_inputs_.data(), Accumulate::No);
  return logit_inputs_.data();
}

float* Model::project_to_logits(const float* normed, int64_t rows) {
  if (decoder_output_ == ModelOutput::HiddenStates) {
    const int64_t d = config_.hidden_size;
    backend_.copy_2d(normed, d, logits_.data(), d, rows, d);
    return nullptr;
  }
  backend_.matmul(normed, rows, config_.hidden_size, output_head(), nullptr, logits_.data());
  return logits_.data();
}

int64_t Model::max_context() const {
  return config_.max_position;
}

Model::TokenCost Model::cost_per_token() {
  TokenCost cost;
  bool head_seen = false;
  visit_tensors([&](const TensorSpec& spec, Tensor& slot) {
    if (slot.empty() || spec.kind == TensorKind::Vector) return;
    if (spec.kind == TensorKind::Embedding) {  // one row gathered per token
      cost.weight_bytes += slot.nbytes() / uint64_t(slot.shape[0]);
      return;
    }
    cost.weight_bytes += slot.nbytes();
    cost.multiply_adds += uint64_t(slot.numel());
    head_seen |= slot.data == output_head().data;
  });
  if (!head_seen) {  // a tied embedding table doubles as the head and is then read in full
    cost.weight_bytes += output_head().nbytes();
    cost.multiply_adds += uint64_t(output_head().numel());
  }
  cost.head_multiply_adds = uint64_t(output_head().numel());
  return cost;
}

uint64_t Model::attention_multiply_adds(int64_t first_pos, int64_t n_tokens) const {
  // Token at position p sees p + 1 keys: the sum over the span is n * first_pos + n (n + 1) / 2.
  const uint64_t n = uint64_t(n_tokens), keys = n * uint64_t(first_pos) + n * (n + 1) / 2;
  return 2 * keys * uint64_t(config_.n_layers * config_.n_heads * config_.head_dim);
}

uint64_t Model::parameter_count() {
  uint64_t n = 0;
  visit_tensors([&](const TensorSpec&, Tensor& slot) { n += uint64_t(slot.numel() * !slot.empty()); });
  return n;
}

std::unique_ptr<Model> make_model(const ModelConfig& config, Backend& backend,
                                  const ModelOptions& options) {
  BRISK_CHECK(config.arch, "make_model: config without an architecture");
  return config.arch->make(config, backend, options);
}

Result<Checkpoint> open_checkpoint(const std::filesystem::path& dir) {
  Checkpoint c;
  if (is_gguf_path(dir)) {  // llama.cpp's single-file format
    BRISK_ASSIGN(gguf, open_gguf_model(dir));
    c.config = std::move(gguf.config);
    c.store = std::move(gguf.weights);
  } else {
    if (!is_directory_path(dir))
      return make_error(dir.string() + ": not a model folder (expected a directory with config.json, or a .gguf file)");
    BRISK_ASSIGN(folder_config, load_model_config(dir / "config.json"));
    BRISK_ASSIGN(folder_store, WeightStore::open_dir(dir));
    c.config = std::move(folder_config);
    c.store = std::move(folder_store);
  }
  if (!c.config.quantization_config.is_null()) {  // sparse storage first: quantized parts may be sparse too
    const std::string where = (dir / "config.json").string();
    BRISK_TRY(decompress_sparse_tensors(c.config.quantization_config, c.store, where));
    BRISK_ASSIGN(groups, parse_quantization_config(c.config.quantization_config, where));
    BRISK_TRY(convert_quantized_tensors(groups, c.store));
  }
  return c;
}

Result<std::unique_ptr<Model>> load_model(const std::filesystem::path& dir, Backend& backend,
                                          const ModelOptions& options) {
  BRISK_ASSIGN(checkpoint, open_checkpoint(dir));
  ModelConfig config = std::move(checkpoint.config);
  WeightStore store = std::move(checkpoint.store);
  BRISK_TRY(cut_pipeline_stage(config, store, options.pipeline));
  BRISK_TRY(shard_for_tensor_parallel(config, store, options.tensor_parallel));
  BRISK_TRY(check_checkpoint(config, store));
  std::unique_ptr<Model> model = make_model(config, backend, options);
  model->store_ = std::make_shared<const WeightStore>(std::move(store));
  BRISK_TRY(model->bind(*model->store_, options.on_load_progress));
  return model;
}

}  // namespace brisk
