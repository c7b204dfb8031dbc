#!/usr/bin/env bash
# Formats every C++/CUDA source in place with clang-format (what scripts/check-format.sh checks).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/source-files.sh
qwen3moe_source_files | xargs clang-format -i
