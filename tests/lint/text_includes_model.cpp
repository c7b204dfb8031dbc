// Built only by the test lint_build_refuses_text_to_model, with the include views of core/text:
// the tokenizer is found, the model is not (core/text depends on no model and no MPI).
// The allowed include comes first, so it is proven found before the refused one.
// clang-format off
#include "core/text/tokenizer.h"
#include "core/model/model.h"
// clang-format on
