// The communicators for device memory through the CUDA backend, in one process (the GPU
// machines have no mpirun of their own; the 2-rank runs are tests/mpi/test_host_staged_
// communicator under mpirun): the local device communicator (device-to-device copies), the
// host-staged one over the local host communicator (pinned staging, download and upload), and
// NCCL with a world of one (unique id, init, every call on the backend's stream, grouped
// send/recv to itself). Without a GPU every test reports SKIPPED with the reason.
#include <gtest/gtest.h>

#include "communicator_checks.h"
#include "parallel/comm/host_staged_communicator.h"
#include "parallel/comm/local_device_communicator.h"
#ifdef QWEN3MOE_HAVE_NCCL
#include "parallel/comm/nccl/nccl_communicator.h"
#endif

namespace qwen3moe {
namespace {

class CudaCommunicators : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU visible";
    gpu = make_cuda_backend(0);
  }
  std::unique_ptr<Backend> gpu;
  std::unique_ptr<Communicator> host = make_local_communicator();
};

TEST_F(CudaCommunicators, LocalDeviceCommunicator) {
  auto comm = make_local_device_communicator(*gpu);
  testing::check_every_collective(*comm, *gpu);
}

TEST_F(CudaCommunicators, HostStagedOverOneRank) {
  auto comm = make_host_staged_communicator(*host, *gpu);
  testing::check_every_collective(*comm, *gpu);
}

TEST_F(CudaCommunicators, NcclWorldOfOne) {
#ifdef QWEN3MOE_HAVE_NCCL
  EXPECT_EQ(shared_gpu_reason(*host, 0), "");
  auto comm = make_nccl_communicator(*host, *gpu);
  testing::check_every_collective(*comm, *gpu);
#else
  GTEST_SKIP() << "built without NCCL";
#endif
}

}  // namespace
}  // namespace qwen3moe
