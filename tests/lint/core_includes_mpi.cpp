// Built only by the test lint_build_refuses_core_to_mpi, with the include views of core/engine:
// the engine and the Communicator interface are found, the MPI communicator is not (only the
// launcher chooses a communicator implementation).
// The allowed include comes first, so it is proven found before the refused one.
// clang-format off
#include "core/engine/engine.h"
#include "parallel/comm/communicator.h"
#include "parallel/comm/mpi/mpi_communicator.h"
// clang-format on
