#include "core/thread_pool.h"

#include <immintrin.h>

#include <algorithm>

namespace brisk {

// About 20-40 us of pause instructions: longer than the gap between two parallel loops of a
// decode step, much shorter than a scheduler time slice.
constexpr int kSpinsBeforeYield = 2000;
// A waiting worker then yields this many times before sleeping on the condition variable.
constexpr int kYieldsBeforeSleep = 200;

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads > 0 ? n_threads : hardware_threads()) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin for a short while (new work usually arrives within microseconds), yield, then sleep.
    for (int spin = 0; spin < kSpinsBeforeYield + kYieldsBeforeSleep &&
                       generation_.load(std::memory_order_acquire) == seen;
         ++spin) {
      if (spin < kSpinsBeforeYield)
        _mm_pause();
      else
        std::this_thread::yield();
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    (*job_)(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  fn(0);
  // Spin first (the other threads usually finish within microseconds), then yield: on a machine
  // with more runnable threads than cores the thread being waited for may not be running, and
  // pure spinning burned the time slices it needed (tinyllama decode ~3x below a fair share of
  // the CPU with other builds running).
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
    if (spin < kSpinsBeforeYield)
      _mm_pause();
    else
      std::this_thread::yield();
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int parts = int(std::min<int64_t>(n, n_threads_));
  if (parts == 1) {
    fn(0, n);
    return;
  }
  run_on_all([&](int t) {
    if (t >= parts) return;
    int64_t begin = n * t / parts, end = n * (t + 1) / parts;
    fn(begin, end);
  });
}

void parallel_for(ThreadPool* pool, int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (pool)
    pool->parallel_for(n, fn);
  else
    fn(0, n);
}

}  // namespace brisk
