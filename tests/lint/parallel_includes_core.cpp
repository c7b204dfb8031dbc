// Built only by the test lint_build_refuses_parallel_to_core, with the include views of
// parallel/moe: the dispatcher is found, the engine is not (parallel knows nothing of Qwen3).
// The allowed include comes first, so it is proven found before the refused one.
// clang-format off
#include "parallel/moe/expert_dispatch.h"
#include "core/engine/engine.h"
// clang-format on
