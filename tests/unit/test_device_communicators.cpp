// The one-rank communicators for backend memory, through the CPU backend: the local device
// communicator (Backend::copy) and the host-staged one over the local host communicator (the
// staging path with a world of one). Every collective, payloads naming their index.
#include <gtest/gtest.h>

#include "communicator_checks.h"
#include "parallel/comm/host_staged_communicator.h"
#include "parallel/comm/local_device_communicator.h"

namespace qwen3moe {
namespace {

TEST(LocalDeviceCommunicator, EveryCollectiveThroughTheCpuBackend) {
  auto cpu = make_cpu_backend(1);
  auto comm = make_local_device_communicator(*cpu);
  EXPECT_EQ(comm->size(), 1);
  testing::check_every_collective(*comm, *cpu);
}

TEST(HostStagedCommunicator, EveryCollectiveOverOneRank) {
  auto cpu = make_cpu_backend(1);
  auto host = make_local_communicator();
  auto comm = make_host_staged_communicator(*host, *cpu);
  EXPECT_EQ(comm->name(), "local+host-staged");
  testing::check_every_collective(*comm, *cpu);
}

}  // namespace
}  // namespace qwen3moe
