// Parses Jinja template text into a syntax tree, with the whitespace rules Hugging Face renders
// chat templates under (trim_blocks and lstrip_blocks on, plus the -/+ markers). Constructs
// outside the subset chat templates use are errors that name them and the line.
#pragma once

#include <string_view>

#include "core/text/jinja/ast.h"

namespace qwen3moe::jinja {

Template parse(std::string_view source);

}  // namespace qwen3moe::jinja
