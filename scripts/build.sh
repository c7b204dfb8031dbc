#!/usr/bin/env bash
# Configures and builds into ./build (or $QWEN3MOE_BUILD_DIR) with Ninja; extra arguments go to
# cmake. The CUDA sources compile whenever nvcc is found (no GPU needed).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${QWEN3MOE_BUILD_DIR:-$repo/build}"
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
ninja -C "$build"
