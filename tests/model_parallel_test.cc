// Tensor and pipeline parallelism (models/tensor_parallel.h, parallel/tensor_parallel_backend.h,
// models/pipeline_stage.h): ranks run as threads of this process, joined by communicators that do
// in memory what MPI does between processes, and their logits must equal the one-process model's.
// The MPI path itself runs under mpirun in tests/tensor_parallel_mpi_test.py.
#include <gtest/gtest.h>

#include <barrier>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <cstring>
#include <filesystem>
#include <thread>

#include "backends/cpu/cpu_backend.h"
#include "core/splitmix64.h"
#include "formats/json_file.h"
#include "formats/safetensors.h"
#include "golden_fixture.h"
#include "models/model.h"
#include "parallel/tensor_parallel_backend.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(BRISK_SHARED_DIR) / "models";

// `size` ranks as threads: each collective waits for all, then every rank reads every rank's
// buffer (summed in rank order, so all get the same bits, as MPI_Allreduce gives). Messages go
// through a mailbox per (sender, receiver), in order; sends never wait.
class ThreadGroup {
 public:
  explicit ThreadGroup(int64_t size) : size_(size), sync_(size), buffers_(size_t(size)) {}

  class Member final : public Communicator {
   public:
    Member(ThreadGroup& group, int64_t rank) : group_(group), rank_(rank) {}
    int64_t rank() const override { return rank_; }
    int64_t size() const override { return group_.size_; }
    void all_reduce_sum(float* x, int64_t n) override {
      group_.buffers_[size_t(rank_)] = x;
      group_.sync_.arrive_and_wait();
      std::vector<float> sum(size_t(n), 0.0f);
      for (void* b : group_.buffers_)
        for (int64_t i = 0; i < n; ++i) sum[size_t(i)] += static_cast<const float*>(b)[i];
      group_.sync_.arrive_and_wait();  // every rank has read every buffer
      std::memcpy(x, sum.data(), size_t(n) * sizeof(float));
    }
    void all_gather(const float* mine, int64_t n, float* all) override {
      group_.buffers_[size_t(rank_)] = const_cast<float*>(mine);
      group_.sync_.arrive_and_wait();
      for (size_t q = 0; q < group_.buffers_.size(); ++q)
        std::memcpy(all + int64_t(q) * n, group_.buffers_[q], size_t(n) * sizeof(float));
      group_.sync_.arrive_and_wait();
    }
    void broadcast(void* data, int64_t bytes, int64_t root) override {
      group_.buffers_[size_t(rank_)] = data;
      group_.sync_.arrive_and_wait();
      if (rank_ != root) std::memcpy(data, group_.buffers_[size_t(root)], size_t(bytes));
      group_.sync_.arrive_and_wait();
    }
    void send(const void* data, int64_t bytes, int64_t to) override {
      const auto* p = static_cast<const uint8_t*>(data);
      std::lock_guard<std::mutex> lock(group_.mail_mutex_);
      group_.mail_[{rank_, to}].emplace_back(p, p + bytes);
      group_.mail_arrived_.notify_all();
    }
    void post_receive(void* data, int64_t bytes, int64_t from) override { pending_.push_back({data, bytes, from}); }
    void wait_receives() override {
      std::unique_lock<std::mutex> lock(group_.mail_mutex_);
      for (const Pending& p : pending_) {
        std::deque<std::vector<uint8_t>>& box = group_.mail_[{p.from, rank_}];
        group_.mail_arrived_.wait(lock, [&] { return !box.empty(); });
        EXPECT_EQ(int64_t(box.front().size()), p.bytes) << "message " << p.from << " -> " << rank_;
        std::memcpy(p.data, box.front().data(), std::min(box.front().size(), size_t(p.bytes)));
        box.pop_front();
      }
      pending_.clear();
    }

   private:
    struct Pending {
      void* data;
      int64_t bytes, from;
    };
    ThreadGroup& group_;
    int64_t rank_;
    std::vector<Pending> pending_;
  };

 private:
  int64_t size_;
  std::barrier<> sync_;
  std::vector<void*> buffers_;
  std::mutex mail_mutex_;
  std::condition_variable mail_arrived_;
  std::map<std::pair<int64_t, int64_t>, std::deque<std::vector<uint8_t>>> mail_;
};

// Logits of `ids` (in passes of `chunk` rows) from tp x pp ranks as the engine arranges them (rank
// r: stage r / tp, shard r % tp), each its own backend, weight shares and cache: rank 0's, which
// every shard of the first stage must equal (the last stage returns each shard its logits).
Result<std::vector<float>> run_split(const fs::path& dir, int64_t tp, int64_t pp, const std::vector<int32_t>& ids,
                                     int64_t chunk) {
  std::vector<std::unique_ptr<ThreadGroup>> shard_groups, stage_groups;  // per stage, per shard
  for (int64_t s = 0; s < pp; ++s) shard_groups.push_back(std::make_unique<ThreadGroup>(tp));
  for (int64_t t = 0; t < tp; ++t) stage_groups.push_back(std::make_unique<ThreadGroup>(pp));
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::unique_ptr<Model>> models;
  for (int64_t r = 0; r < tp * pp; ++r) {
    const int64_t stage = r / tp, shard = r % tp;
    std::unique_ptr<Backend> backend = std::make_unique<CpuBackend>(1);
    TensorParallelBackend* wrapper = nullptr;
    if (tp > 1) {
      auto wrapped = std::make_unique<TensorParallelBackend>(
          std::move(backend), std::make_shared<ThreadGroup::Member>(*shard_groups[size_t(stage)], shard));
      wrapper = wrapped.get();
      backend = std::move(wrapped);
    }
    ModelOptions options;
    options.tensor_parallel = {shard, tp};
    options.pipeline = {stage, pp};
    BRISK_ASSIGN(model, load_model(dir, *backend, options));
    if (wrapper) wrapper->connect(*model);
    if (pp > 1) model->connect_pipeline(std::make_shared<ThreadGroup::Member>(*stage_groups[size_t(shard)], stage));
    backends.push_back(std::move(backend));
    models.push_back(std::move(model));
  }
  std::vector<std::vector<float>> logits(size_t(tp * pp));
  std::vector<std::thread> ranks;
  for (int64_t r = 0; r < tp * pp; ++r)
    ranks.emplace_back([&, r] { logits[size_t(r)] = golden::run(*models[size_t(r)], ids, chunk); });
  for (std::thread& t : ranks) t.join();
  for (int64_t r = 1; r < tp; ++r)
    if (logits[size_t(r)] != logits[0]) return make_error("rank " + std::to_string(r) + "'s logits differ from rank 0's");
  return logits[0];
}

// The shared models: Llama (6 heads over 2 kv heads) on 2 ranks; Qwen2 (4 heads, 2 kv heads, q/k/v
// biases, tied embeddings) on 2 and on 4, where each rank keeps a copy of the one kv head its
// query heads read; GPT-2 (fused Conv1D c_attn, biases everywhere) on 2 and 4. The golden
// variants: Phi-3's fused qkv_proj and gate_up_proj, a single kv head with o_proj bias (kept on
// rank 0 alone) on 2 and 4, Mistral's sliding window, Gemma-2 (post-norms, soft caps, a tied head)
// on 2 and 4, Gemma-3 (per-head q/k norms) on 2. Prefill in chunks of 3, then the rest: each
// rank's cache of its heads carries over.
TEST(TensorParallel, RanksComputeTheOneProcessLogits) {
  struct Case { std::string dir; int64_t ranks; };
  const std::vector<int32_t> ids = {5, 300, 41, 1234, 77, 2048, 9, 610, 12, 260};
  const std::vector<int32_t> small_vocab_ids = {5, 30, 41, 12, 77, 20, 9, 61, 12, 26};
  const std::string shared = (kModels / "").string(), golden_dir = golden::kDir;
  for (const Case& c : {Case{shared + "sotu-llama", 2}, Case{shared + "sotu-qwen2", 2}, Case{shared + "sotu-qwen2", 4},
                        Case{shared + "sotu-gpt2", 2}, Case{shared + "sotu-gpt2", 4}, Case{golden_dir + "phi3", 2},
                        Case{golden_dir + "llama-mqa-bias", 2}, Case{golden_dir + "llama-mqa-bias", 4},
                        Case{golden_dir + "mistral-window", 2}, Case{golden_dir + "gemma2", 2},
                        Case{golden_dir + "gemma2", 4}, Case{golden_dir + "gemma3", 2}}) {
    CpuBackend backend(1);
    auto whole = load_model(c.dir, backend);
    ASSERT_TRUE(whole.ok()) << whole.error().message;
    const std::vector<int32_t>& tokens = whole.value()->config().vocab_size > 4096 ? ids : small_vocab_ids;
    const std::vector<float> want = golden::run(*whole.value(), tokens, 3);
    auto got = run_split(c.dir, c.ranks, 1, tokens, 3);
    ASSERT_TRUE(got.ok()) << c.dir << " x" << c.ranks << ": " << got.error().message;
    EXPECT_LT(golden::relative_l2(got.value(), want), 1e-5) << c.dir << " x" << c.ranks;
  }
}

// A vocabulary that does not divide over the ranks: the llama-gqa fixture with one more token (a
// random row of the embedding and of the head), 321 ids over 2 ranks (161 + 160) and 4 (81 x 3 +
// 78); the ids include the last one.
TEST(TensorParallel, UnevenVocabularySharesComputeTheOneProcessLogits) {
  const fs::path source = golden::kDir + "llama-gqa", dir = fs::temp_directory_path() / "brisk_tp_vocab321";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto config = read_json_file(source / "config.json");
  ASSERT_TRUE(config.ok());
  (*config)["vocab_size"] = 321;
  ASSERT_TRUE(write_text_file(dir / "config.json", config->dump()).ok());
  auto weights = SafetensorsFile::open(source / "model.safetensors");
  ASSERT_TRUE(weights.ok()) << weights.error().message;
  std::vector<NamedTensor> tensors = weights->tensors();
  std::vector<std::vector<uint8_t>> grown;
  grown.reserve(2);
  SplitMix64 rng{5};
  for (NamedTensor& t : tensors) {
    if (t.name != "model.embed_tokens.weight" && t.name != "lm_head.weight") continue;
    const size_t row = t.tensor.nbytes() / size_t(t.tensor.dim(0));
    grown.emplace_back(static_cast<const uint8_t*>(t.tensor.data),
                       static_cast<const uint8_t*>(t.tensor.data) + t.tensor.nbytes());
    for (size_t i = 0; i < row / sizeof(float); ++i) {  // f32 values of magnitude ~0.03
      const float v = float(int64_t(rng.next() % 2001) - 1000) * 3e-5f;
      const auto* bytes = reinterpret_cast<const uint8_t*>(&v);
      grown.back().insert(grown.back().end(), bytes, bytes + sizeof(float));
    }
    t.tensor.data = grown.back().data();
    t.tensor.shape[0] += 1;
  }
  ASSERT_EQ(grown.size(), 2u);
  for (const NamedTensor& t : tensors) ASSERT_EQ(t.tensor.dtype, DType::F32) << t.name;
  ASSERT_TRUE(write_safetensors(dir / "model.safetensors", tensors).ok());
  const std::vector<int32_t> ids = {320, 5, 160, 161, 41, 319, 80, 81, 240, 243, 320, 0};
  CpuBackend backend(1);
  auto whole = load_model(dir, backend);
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  const std::vector<float> want = golden::run(*whole.value(), ids, 3);
  for (int64_t ranks : {2, 4}) {
    auto got = run_split(dir, ranks, 1, ids, 3);
    ASSERT_TRUE(got.ok()) << ranks << ": " << got.error().message;
    EXPECT_LT(golden::relative_l2(got.value(), want), 1e-6) << ranks;
  }
  ModelOptions options;
  options.tensor_parallel = {3, 4};
  auto last = load_model(dir, backend, options);
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_EQ(last.value()->config().vocab_begin, 243);
  EXPECT_EQ(last.value()->config().vocab_rows(), 78);
  fs::remove_all(dir);
}

// What cannot be split says so before anything runs: heads that do not divide, a family not
// declared splittable (BERT), a rank outside the job.
TEST(TensorParallel, UnsplittableModelsAreRefused) {
  CpuBackend backend(1);
  ModelOptions options;
  options.tensor_parallel = {0, 4};  // sotu-llama: 6 heads
  auto heads = load_model(kModels / "sotu-llama", backend, options);
  ASSERT_FALSE(heads.ok());
  EXPECT_NE(heads.error().message.find("6 attention heads do not divide over 4"), std::string::npos) << heads.error().message;
  options.tensor_parallel = {0, 2};
  auto bert = load_model(golden::kDir + "bert", backend, options);
  ASSERT_FALSE(bert.ok());
  EXPECT_NE(bert.error().message.find("'bert' does not run tensor-parallel"), std::string::npos) << bert.error().message;
  options.tensor_parallel = {2, 2};
  EXPECT_FALSE(load_model(kModels / "sotu-qwen2", backend, options).ok());
}

// Pipeline stages, alone and over tensor-parallel shards, on the models whose families run as
// stages: prefill passes of 67 rows (split into micro-batches, the second attending to the
// first's keys) then the remaining 13, and token by token (no split). 6 layers over 4 stages:
// stages of 2, 2, 1, 1 layers; Qwen2's tied head sits with the embedding table on the last stage.
TEST(PipelineParallel, StagesComputeTheOneProcessLogits) {
  struct Case { std::string dir; int64_t tp, pp; };
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < 80; ++i) ids.push_back((i * 37 + 11) % 300);
  const std::string shared = (kModels / "").string(), golden_dir = golden::kDir;
  for (const Case& c : {Case{shared + "sotu-llama", 1, 2}, Case{shared + "sotu-llama", 1, 4}, Case{shared + "sotu-qwen2", 1, 2},
                        Case{shared + "sotu-qwen2", 2, 2}, Case{shared + "sotu-gpt2", 1, 3}, Case{shared + "sotu-gpt2", 2, 2},
                        Case{golden_dir + "phi3", 1, 2}, Case{golden_dir + "mistral-window", 1, 2}}) {
    CpuBackend backend(1);
    auto whole = load_model(c.dir, backend);
    ASSERT_TRUE(whole.ok()) << whole.error().message;
    for (int64_t chunk : {int64_t(67), int64_t(1)}) {
      const std::vector<int32_t> tokens(ids.begin(), ids.begin() + (chunk == 1 ? 12 : 80));
      const std::vector<float> want = golden::run(*whole.value(), tokens, chunk);
      auto got = run_split(c.dir, c.tp, c.pp, tokens, chunk);
      ASSERT_TRUE(got.ok()) << c.dir << " tp " << c.tp << " pp " << c.pp << ": " << got.error().message;
      EXPECT_LT(golden::relative_l2(got.value(), want), 1e-5) << c.dir << " tp " << c.tp << " pp " << c.pp << " chunk " << chunk;
    }
  }
}

// A stage holds only its layers and the model-level tensors it uses: a middle stage of four has
// neither embeddings nor head; more stages than layers, and families that do not run as stages,
// are refused by name.
TEST(PipelineParallel, StagesHoldTheirShareAndRefuseWhatCannotSplit) {
  CpuBackend backend(1);
  auto whole = load_model(kModels / "sotu-llama", backend);
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  ModelOptions options;
  options.pipeline = {1, 4};
  auto middle = load_model(kModels / "sotu-llama", backend, options);
  ASSERT_TRUE(middle.ok()) << middle.error().message;
  EXPECT_EQ(middle.value()->config().n_layers, 2);
  EXPECT_TRUE(middle.value()->output_head().empty());
  // Untied: embeddings, head and final norm are the model-level parameters; the rest is 6 equal layers.
  const ModelConfig& c = whole.value()->config();
  const uint64_t model_level = uint64_t(2 * c.vocab_size * c.hidden_size + c.hidden_size);
  EXPECT_EQ(3 * middle.value()->parameter_count(), whole.value()->parameter_count() - model_level);
  options.pipeline = {0, 7};
  auto too_many = load_model(kModels / "sotu-llama", backend, options);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message.find("6 layers do not fill 7 stages"), std::string::npos) << too_many.error().message;
  options.pipeline = {0, 2};
  auto gemma = load_model(golden::kDir + "gemma2", backend, options);
  ASSERT_FALSE(gemma.ok());
  EXPECT_NE(gemma.error().message.find("'gemma2' does not run as pipeline stages"), std::string::npos) << gemma.error().message;
}

}  // namespace
}  // namespace brisk
