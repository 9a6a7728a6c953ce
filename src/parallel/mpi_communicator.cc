#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#ifdef BRISK_HAVE_MPI
#include <mpi.h>
#endif

namespace brisk {

#ifdef BRISK_HAVE_MPI

namespace {

bool mpi_initialized() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

constexpr int64_t kMaxCount = int64_t(1) << 30;  // MPI counts are int: long messages go in pieces

// How long a collective inside a pass (an all-reduce, rank 0 sending a batch) may wait for the
// other ranks before this rank ends the job: BRISK_COLLECTIVE_TIMEOUT seconds (default 300; a step
// takes milliseconds). Followers wait for their next batch without one (a server may idle for hours).
// A value that is not a positive number of seconds is an error naming the variable.
Result<double> collective_timeout_seconds() {
  const char* text = std::getenv("BRISK_COLLECTIVE_TIMEOUT");
  if (!text) return 300.0;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(seconds > 0) || seconds > 1e9)
    return make_error(std::string("BRISK_COLLECTIVE_TIMEOUT='") + text + "' is not a positive number of seconds");
  return seconds;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A thread that watches the collective in progress (the blocking call itself stays MPI's fastest
// path): past the deadline it says so and exits the process, and mpirun then ends every rank.
class CollectiveWatchdog {
 public:
  // Never destroyed (its thread outlives static destruction at exit): make one per process.
  CollectiveWatchdog(int64_t rank, double timeout_seconds) : timeout_(timeout_seconds), rank_(rank) {
    std::thread([this] {
      for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        const double since = started_.load();
        if (since > 0 && now_seconds() - since > timeout_) {
          std::fprintf(stderr,
                       "brisk: error: rank %lld: %s waited more than %.0f s for the other ranks (one is stuck or "
                       "gone; BRISK_COLLECTIVE_TIMEOUT sets the limit): ending the job\n",
                       (long long)rank_, what_.load(), timeout_);
          std::_Exit(1);
        }
      }
    }).detach();
  }
  void enter(const char* what) {
    what_ = what;
    started_ = now_seconds();
  }
  void leave() { started_ = 0.0; }

 private:
  const double timeout_;
  const int64_t rank_;
  std::atomic<double> started_{0.0};
  std::atomic<const char*> what_{""};
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, CollectiveWatchdog& watchdog) : comm_(comm), watchdog_(watchdog) {
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    rank_ = rank;
    size_ = size;
  }
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }
  void all_reduce_sum(float* x, int64_t n) override {
    // Errors abort the job (MPI_ERRORS_ARE_FATAL); a rank that stops answering (stuck, stopped,
    // its host gone) is caught by the watchdog.
    watchdog_.enter("an all-reduce");
    for (int64_t done = 0; done < n; done += kMaxCount)
      MPI_Allreduce(MPI_IN_PLACE, x + done, int(std::min(kMaxCount, n - done)), MPI_FLOAT, MPI_SUM, comm_);
    watchdog_.leave();
  }
  void all_gather(const float* mine, int64_t n, float* all) override {
    // One call: the gathered logits of a batch are far below MPI's int count limit.
    BRISK_CHECK(n * size_ <= kMaxCount, "all_gather: " + std::to_string(n * size_) + " floats in one call");
    watchdog_.enter("an all-gather");
    MPI_Allgather(mine, int(n), MPI_FLOAT, all, int(n), MPI_FLOAT, comm_);
    watchdog_.leave();
  }
  void broadcast(void* data, int64_t bytes, int64_t root) override {
    // Watched on the sender only: a follower waits for rank 0's next batch as long as it takes.
    const bool sending = rank_ == root;
    if (sending) watchdog_.enter("a broadcast");
    auto* p = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes; done += kMaxCount)
      MPI_Bcast(p + done, int(std::min(kMaxCount, bytes - done)), MPI_BYTE, int(root), comm_);
    if (sending) watchdog_.leave();
  }
  void send(const void* data, int64_t bytes, int64_t to) override {
    watchdog_.enter("a send to the next pipeline stage");
    const auto* p = static_cast<const char*>(data);
    for (int64_t done = 0; done < bytes; done += kMaxCount)
      MPI_Send(p + done, int(std::min(kMaxCount, bytes - done)), MPI_BYTE, int(to), kPointToPointTag, comm_);
    watchdog_.leave();
  }
  void post_receive(void* data, int64_t bytes, int64_t from) override {
    auto* p = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes; done += kMaxCount) {
      pending_.emplace_back();
      MPI_Irecv(p + done, int(std::min(kMaxCount, bytes - done)), MPI_BYTE, int(from), kPointToPointTag, comm_,
                &pending_.back());
    }
  }
  void wait_receives() override {
    if (pending_.empty()) return;
    watchdog_.enter("a receive from another pipeline stage");
    MPI_Waitall(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE);
    watchdog_.leave();
    pending_.clear();
  }

 private:
  static constexpr int kPointToPointTag = 7;
  MPI_Comm comm_;
  int64_t rank_ = 0, size_ = 1;
  CollectiveWatchdog& watchdog_;
  std::vector<MPI_Request> pending_;  // posted receives, in order
};

CollectiveWatchdog* watchdog = nullptr;  // one per process, made by join_mpi_world

}  // namespace

Result<std::shared_ptr<Communicator>> join_mpi_world() {
  static std::shared_ptr<Communicator> world;
  if (world) return world;
  BRISK_ASSIGN(timeout, collective_timeout_seconds());
  if (!mpi_initialized()) {
    // Serialized: the server's engine thread, not main, makes the calls on rank 0.
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
      return make_error("MPI_Init failed: start brisk under mpirun");
    if (provided < MPI_THREAD_SERIALIZED) return make_error("this MPI library cannot be called from more than one thread");
    // Errors in a collective end the whole job rather than returning to one rank.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    std::atexit([] {
      if (mpi_initialized()) MPI_Finalize();
    });
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  watchdog = new CollectiveWatchdog(rank, timeout);
  world = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, *watchdog);
  return world;
}

std::shared_ptr<Communicator> split_mpi_world(int64_t color, int64_t key) {
  BRISK_CHECK(watchdog, "split_mpi_world: join_mpi_world first");
  MPI_Comm part = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, int(color), int(key), &part);
  MPI_Comm_set_errhandler(part, MPI_ERRORS_ARE_FATAL);
  return std::make_shared<MpiCommunicator>(part, *watchdog);
}

void abort_mpi_job(int exit_code) {
  int size = 1;
  if (mpi_initialized() && MPI_Comm_size(MPI_COMM_WORLD, &size) == MPI_SUCCESS && size > 1)
    MPI_Abort(MPI_COMM_WORLD, exit_code);
}

#else

Result<std::shared_ptr<Communicator>> join_mpi_world() {
  return make_error("this brisk was built without MPI: install libopenmpi-dev (and openmpi-bin for mpirun) and rebuild");
}

std::shared_ptr<Communicator> split_mpi_world(int64_t, int64_t) {
  BRISK_CHECK(false, "split_mpi_world: built without MPI");
  return nullptr;
}

void abort_mpi_job(int) {}

#endif

}  // namespace brisk
