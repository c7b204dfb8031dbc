// Runs a parsed Jinja template against a set of variables. Covers what chat templates use:
// for/if/set, namespace(), loop variables, slicing, Python string and dict methods, the common
// filters and tests, raise_exception. Anything else is an Error naming the construct and line.
#pragma once

#include <string>

#include "core/text/jinja/ast.h"
#include "core/text/jinja/value.h"

namespace qwen3moe::jinja {

std::string render(const Template& tpl, const Dict& globals);

}  // namespace qwen3moe::jinja
