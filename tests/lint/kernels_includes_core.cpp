// Built only by the test lint_build_refuses_kernels_to_core, with the include views of
// kernels/cpu: its own headers are found, a core header is not (kernels sit below core).
// The allowed include comes first, so it is proven found before the refused one.
// clang-format off
#include "kernels/cpu/ops.h"
#include "core/model/model.h"
// clang-format on
