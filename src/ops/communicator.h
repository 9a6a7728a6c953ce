// The collectives that split models need, over the ranks of one job (issue 23). One implementation
// per transport: MPI between CPU processes (parallel/mpi_communicator.h); GPU ranks get NCCL.
#pragma once

#include <cstdint>

namespace brisk {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;
  // x[0, n) summed over the ranks, in place, in the memory of the backend the ranks run on; every
  // rank gets the same bits (so ranks that compute from the sum stay in lockstep).
  virtual void all_reduce_sum(float* x, int64_t n) = 0;
  // bytes of host memory at data copied from rank `root` to every rank (a seed, a request).
  virtual void broadcast(void* data, int64_t bytes, int64_t root) = 0;
};

}  // namespace brisk
