#!/usr/bin/env bash
# Fails, naming the file and line, on any C++/CUDA source that clang-format would change
# (the repository's .clang-format, Debian's clang-format). `scripts/format.sh` fixes them.
# usage: scripts/check-format.sh [REPO_ROOT]
set -euo pipefail
root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$root"
source "$(dirname "${BASH_SOURCE[0]}")/source-files.sh"
mapfile -t files < <(qwen3moe_source_files)
if ! clang-format --dry-run -Werror "${files[@]}"; then
  echo "check-format: the files above are not clang-formatted; run scripts/format.sh" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
