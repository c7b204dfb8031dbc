// main() of every mpi-labelled test: MPI up, gtest on every rank with only rank 0 printing,
// and a non-zero exit on every rank when a test failed on any.
#include <gtest/gtest.h>

#include <memory>

#include "mpi_world.h"
#include "parallel/comm/mpi/mpi_communicator.h"

namespace qwen3moe::testing {
namespace {
std::unique_ptr<Communicator> g_world;
}
Communicator& world() {
  return *g_world;
}
}  // namespace qwen3moe::testing

int main(int argc, char** argv) {
  qwen3moe::MpiSession mpi(&argc, &argv);
  qwen3moe::testing::g_world = qwen3moe::make_mpi_communicator();
  auto& w = qwen3moe::testing::world();
  ::testing::InitGoogleTest(&argc, argv);
  if (w.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int rc = RUN_ALL_TESTS();
  float failed = rc != 0 ? 1.0f : 0.0f;
  w.all_reduce_sum(&failed, 1);
  qwen3moe::testing::g_world.reset();
  return failed > 0 ? 1 : 0;
}
