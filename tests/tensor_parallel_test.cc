// Tensor parallelism (models/tensor_parallel.h, parallel/tensor_parallel_backend.h): ranks run as
// threads of this process, joined by a communicator that does in memory what MPI does between
// processes, and their logits must equal the one-process model's. The MPI path itself runs under
// mpirun in tests/tensor_parallel_mpi_test.py.
#include <gtest/gtest.h>

#include <barrier>
#include <cstring>
#include <filesystem>
#include <thread>

#include "backends/cpu/cpu_backend.h"
#include "golden_fixture.h"
#include "models/model.h"
#include "parallel/tensor_parallel_backend.h"

namespace brisk {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(BRISK_SHARED_DIR) / "models";

// `size` ranks as threads: each collective waits for all, then every rank reads every rank's
// buffer (summed in rank order, so all get the same bits, as MPI_Allreduce gives).
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
    void broadcast(void* data, int64_t bytes, int64_t root) override {
      group_.buffers_[size_t(rank_)] = data;
      group_.sync_.arrive_and_wait();
      if (rank_ != root) std::memcpy(data, group_.buffers_[size_t(root)], size_t(bytes));
      group_.sync_.arrive_and_wait();
    }

   private:
    ThreadGroup& group_;
    int64_t rank_;
  };

 private:
  int64_t size_;
  std::barrier<> sync_;
  std::vector<void*> buffers_;
};

// Logits of `ids` from `size` ranks (rank 0's; every rank's must be the same), each its own
// backend and weight shares.
Result<std::vector<float>> run_tensor_parallel(const fs::path& dir, int64_t size, const std::vector<int32_t>& ids) {
  ThreadGroup group(size);
  std::vector<std::unique_ptr<TensorParallelBackend>> backends;
  std::vector<std::unique_ptr<Model>> models;
  for (int64_t r = 0; r < size; ++r) {
    backends.push_back(std::make_unique<TensorParallelBackend>(
        std::make_unique<CpuBackend>(1), std::make_shared<ThreadGroup::Member>(group, r)));
    ModelOptions options;
    options.tensor_parallel = {r, size};
    BRISK_ASSIGN(model, load_model(dir, *backends.back(), options));
    backends.back()->reduce_row_parallel_outputs(*model);
    models.push_back(std::move(model));
  }
  std::vector<std::vector<float>> logits(static_cast<size_t>(size));
  std::vector<std::thread> ranks;
  for (int64_t r = 0; r < size; ++r)
    ranks.emplace_back([&, r] { logits[size_t(r)] = golden::run(*models[size_t(r)], ids, 3); });
  for (std::thread& t : ranks) t.join();
  for (int64_t r = 1; r < size; ++r)
    if (logits[size_t(r)] != logits[0]) return make_error("rank " + std::to_string(r) + "'s logits differ from rank 0's");
  return logits[0];
}

// The shared models: Llama (6 heads over 2 kv heads) on 2 ranks; Qwen2 (4 heads, 2 kv heads, q/k/v
// biases, tied embeddings) on 2 and on 4, where each rank keeps a copy of the one kv head its
// query heads read; GPT-2 (fused Conv1D c_attn, biases everywhere) on 2 and 4. The golden
// variants: Phi-3's fused qkv_proj and gate_up_proj, a single kv head with o_proj bias (kept on
// rank 0 alone) on 2 and 4, Mistral's sliding window. Prefill in chunks of 3, then the rest: each
// rank's cache of its heads carries over.
TEST(TensorParallel, RanksComputeTheOneProcessLogits) {
  struct Case { std::string dir; int64_t ranks; };
  const std::vector<int32_t> ids = {5, 300, 41, 1234, 77, 2048, 9, 610, 12, 260};
  const std::vector<int32_t> small_vocab_ids = {5, 30, 41, 12, 77, 20, 9, 61, 12, 26};
  const std::string shared = (kModels / "").string(), golden_dir = golden::kDir;
  for (const Case& c : {Case{shared + "sotu-llama", 2}, Case{shared + "sotu-qwen2", 2}, Case{shared + "sotu-qwen2", 4},
                        Case{shared + "sotu-gpt2", 2}, Case{shared + "sotu-gpt2", 4}, Case{golden_dir + "phi3", 2},
                        Case{golden_dir + "llama-mqa-bias", 2}, Case{golden_dir + "llama-mqa-bias", 4},
                        Case{golden_dir + "mistral-window", 2}}) {
    CpuBackend backend(1);
    auto whole = load_model(c.dir, backend);
    ASSERT_TRUE(whole.ok()) << whole.error().message;
    const std::vector<int32_t>& tokens = whole.value()->config().vocab_size > 4096 ? ids : small_vocab_ids;
    const std::vector<float> want = golden::run(*whole.value(), tokens, 3);
    auto got = run_tensor_parallel(c.dir, c.ranks, tokens);
    ASSERT_TRUE(got.ok()) << c.dir << " x" << c.ranks << ": " << got.error().message;
    EXPECT_LT(golden::relative_l2(got.value(), want), 1e-5) << c.dir << " x" << c.ranks;
  }
}

// What cannot be split says so before anything runs: heads that do not divide, a family not
// declared splittable (Gemma), a rank outside the job.
TEST(TensorParallel, UnsplittableModelsAreRefused) {
  CpuBackend backend(1);
  ModelOptions options;
  options.tensor_parallel = {0, 4};  // sotu-llama: 6 heads
  auto heads = load_model(kModels / "sotu-llama", backend, options);
  ASSERT_FALSE(heads.ok());
  EXPECT_NE(heads.error().message.find("6 attention heads do not divide over 4"), std::string::npos) << heads.error().message;
  options.tensor_parallel = {0, 2};
  auto gemma = load_model(golden::kDir + "gemma2", backend, options);
  ASSERT_FALSE(gemma.ok());
  EXPECT_NE(gemma.error().message.find("'gemma2' does not run tensor-parallel"), std::string::npos) << gemma.error().message;
  options.tensor_parallel = {2, 2};
  EXPECT_FALSE(load_model(kModels / "sotu-qwen2", backend, options).ok());
}

}  // namespace
}  // namespace brisk
