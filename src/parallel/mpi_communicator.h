// The MPI job this process belongs to, for CPU ranks (issue 23): `mpirun -np N brisk ...` starts
// N copies of the same command; each joins the world communicator on first use. Built without
// MPI (no libopenmpi-dev at configure time), joining is an error that says so.
#pragma once

#include <memory>

#include "core/error.h"
#include "ops/communicator.h"

namespace brisk {

// The world communicator (MPI_Init on the first call; MPI_Finalize at exit).
Result<std::shared_ptr<Communicator>> join_mpi_world();
// The world's ranks that pass the same `color`, numbered by `key` (MPI_Comm_split; every rank of
// the job calls it together): the tensor-parallel group of one pipeline stage, the stages that
// pass one shard's activations on. After join_mpi_world.
std::shared_ptr<Communicator> split_mpi_world(int64_t color, int64_t key);
// Ends every rank of the job (MPI_Abort) when this process fails while others may be waiting in a
// collective; nothing outside an MPI job.
void abort_mpi_job(int exit_code);

}  // namespace brisk
