// The collectives and messages that split models need, over the ranks of one job (issue 23). One
// implementation per transport: MPI between CPU processes (parallel/mpi_communicator.h); GPU ranks
// get NCCL.
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
  // all[q * n, (q + 1) * n) = rank q's mine[0, n), on every rank (a vocabulary-parallel head's
  // logits); memory as all_reduce_sum's.
  virtual void all_gather(const float* mine, int64_t n, float* all) = 0;
  // bytes of host memory at data copied from rank `root` to every rank (a seed, a request).
  virtual void broadcast(void* data, int64_t bytes, int64_t root) = 0;

  // Point to point (pipeline stages pass activations on). send returns once data may be reused;
  // a receive posted with post_receive completes in wait_receives, so a rank can accept a
  // message while it blocks in its own send (the last stage returning logits to the first while
  // the first sends the next micro-batch).
  virtual void send(const void* data, int64_t bytes, int64_t to) = 0;
  virtual void post_receive(void* data, int64_t bytes, int64_t from) = 0;
  virtual void wait_receives() = 0;
  void receive(void* data, int64_t bytes, int64_t from) {
    post_receive(data, bytes, from);
    wait_receives();
  }
};

}  // namespace brisk
