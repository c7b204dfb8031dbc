// The communicators for backend memory under mpirun -np 2 and -np 4, every collective with
// payloads naming (source, destination, index) (tests/communicator_checks.h):
// - host-staged MPI through the CPU backend (its upload/download are memcpy): runs everywhere;
// - host-staged MPI through the CUDA backend, every rank on a GPU of this node, shared when
//   there are fewer GPUs than ranks (the case NCCL refuses): SKIPPED without a GPU;
// - NCCL, one GPU per rank: SKIPPED unless every rank has its own GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "communicator_checks.h"
#include "mpi_world.h"
#include "parallel/comm/host_staged_communicator.h"
#ifdef QWEN3MOE_HAVE_NCCL
#include "parallel/comm/nccl/nccl_communicator.h"
#endif

namespace qwen3moe {
namespace {

using testing::world;

TEST(HostStagedCommunicator, EveryCollectiveThroughTheCpuBackend) {
  auto cpu = make_cpu_backend(1);
  auto comm = make_host_staged_communicator(world(), *cpu);
  EXPECT_EQ(comm->rank(), world().rank());
  EXPECT_EQ(comm->size(), world().size());
  testing::check_every_collective(*comm, *cpu);
}

// The phase set on the staged communicator reaches the MPI one (its watchdog names it), and
// the step the generation loop set on the MPI one is kept.
TEST(HostStagedCommunicator, PassesLayerAndPhaseKeepsStep) {
  auto cpu = make_cpu_backend(1);
  auto comm = make_host_staged_communicator(world(), *cpu);
  world().set_step(41);
  comm->set_phase(7, "attention");
  float* x = static_cast<float*>(cpu->alloc(sizeof(float)));
  *x = 1.0f;
  comm->all_reduce_sum(x, 1);
  EXPECT_EQ(*x, float(world().size()));
  cpu->free(x);
  EXPECT_EQ(world().context().step, 41);
  EXPECT_EQ(world().context().layer, 7);
  EXPECT_STREQ(world().context().phase, "attention");
  world().set_step(-1);
  world().set_phase(-1, "");
}

#ifdef QWEN3MOE_HAVE_CUDA
// Every rank must take the same skip decision, or the others would wait in a collective.
int fewest_gpus_of_any_rank() {
  const int mine = cuda_device_count();
  std::vector<int> all(static_cast<size_t>(world().size()));
  world().all_gather(&mine, all.data(), sizeof(int));
  return *std::min_element(all.begin(), all.end());
}

TEST(HostStagedCommunicator, EveryCollectiveThroughTheCudaBackend) {
  const int gpus = fewest_gpus_of_any_rank();
  if (gpus == 0) GTEST_SKIP() << "no CUDA GPU visible";
  auto gpu = make_cuda_backend(world().rank() % gpus);
  auto comm = make_host_staged_communicator(world(), *gpu);
  testing::check_every_collective(*comm, *gpu);
}
#endif

#ifdef QWEN3MOE_HAVE_NCCL
TEST(NcclCommunicator, EveryCollectiveOneGpuPerRank) {
  const int gpus = fewest_gpus_of_any_rank();
  if (gpus == 0) GTEST_SKIP() << "no CUDA GPU visible";
  const int device = world().rank() % gpus;
  const std::string shared = shared_gpu_reason(world(), device);
  if (!shared.empty()) GTEST_SKIP() << "NCCL needs one GPU per rank: " << shared;
  auto gpu = make_cuda_backend(device);
  auto comm = make_nccl_communicator(world(), *gpu);
  EXPECT_EQ(comm->name(), "nccl");
  testing::check_every_collective(*comm, *gpu);
}
#endif

}  // namespace
}  // namespace qwen3moe
