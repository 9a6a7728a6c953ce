#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <cstdlib>
#include <string>

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

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rank_ = rank;
    size_ = size;
  }
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }
  void all_reduce_sum(float* x, int64_t n) override {
    // Errors abort the job (MPI_ERRORS_ARE_FATAL), so no rank waits on one that failed.
    for (int64_t done = 0; done < n; done += kMaxCount)
      MPI_Allreduce(MPI_IN_PLACE, x + done, int(std::min(kMaxCount, n - done)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }
  void broadcast(void* data, int64_t bytes, int64_t root) override {
    auto* p = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes; done += kMaxCount)
      MPI_Bcast(p + done, int(std::min(kMaxCount, bytes - done)), MPI_BYTE, int(root), MPI_COMM_WORLD);
  }

 private:
  int64_t rank_ = 0, size_ = 1;
};

}  // namespace

Result<std::shared_ptr<Communicator>> join_mpi_world() {
  static std::shared_ptr<Communicator> world;
  if (world) return world;
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
  world = std::make_shared<MpiCommunicator>();
  return world;
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

void abort_mpi_job(int) {}

#endif

}  // namespace brisk
