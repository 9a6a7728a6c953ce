// All-reduce latency and bandwidth over the ranks of an MPI job (issue 23): brisk's communicator
// (parallel/mpi_communicator.h) against a bare MPI_Allreduce loop (what nccl-tests' all_reduce_perf
// times) in the same run, alternating per size, medians. Rank 0 prints one JSON object.
//   mpirun -np 2 build/bench/allreduce_bench [max_bytes]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "parallel/mpi_communicator.h"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int main(int argc, char** argv) {
  const int64_t max_bytes = argc > 1 ? std::atoll(argv[1]) : int64_t(64) << 20;
  auto world = brisk::join_mpi_world();
  if (!world) {
    std::fprintf(stderr, "allreduce_bench: %s\n", world.error().message.c_str());
    return 1;
  }
  brisk::Communicator& comm = *world.value();
  if (comm.rank() == 0) std::printf("{\"ranks\": %lld, \"sizes\": [", (long long)comm.size());
  bool first = true;
  for (int64_t bytes = 8; bytes <= max_bytes; bytes *= 4) {
    const int64_t n = bytes / 4;
    std::vector<float> x(size_t(n), 1.0f);
    const int iterations = bytes <= (1 << 20) ? 200 : 20;
    std::vector<double> ours, bare;
    for (int i = 0; i < iterations; ++i) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t = seconds_now();
      comm.all_reduce_sum(x.data(), n);
      ours.push_back(seconds_now() - t);
      MPI_Barrier(MPI_COMM_WORLD);
      t = seconds_now();
      MPI_Allreduce(MPI_IN_PLACE, x.data(), int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      bare.push_back(seconds_now() - t);
    }
    // Rank 0's medians; bus bandwidth as nccl-tests defines it: 2 (ranks - 1) / ranks x bytes / time.
    const double ours_s = median(ours), bare_s = median(bare);
    const double factor = 2.0 * double(comm.size() - 1) / double(comm.size());
    if (comm.rank() == 0)
      std::printf("%s\n {\"bytes\": %lld, \"brisk_us\": %.2f, \"mpi_us\": %.2f, \"brisk_busbw_gb_s\": %.3f, \"mpi_busbw_gb_s\": %.3f}",
                  first ? "" : ",", (long long)bytes, ours_s * 1e6, bare_s * 1e6, factor * double(bytes) / ours_s / 1e9,
                  factor * double(bytes) / bare_s / 1e9);
    first = false;
  }
  if (comm.rank() == 0) std::printf("\n]}\n");
  return 0;
}
