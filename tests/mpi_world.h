// The MPI world of an mpi-labelled test executable (tests/mpi_test_main.cpp owns it).
#pragma once

#include "parallel/comm/communicator.h"

namespace qwen3moe::testing {
Communicator& world();
}
