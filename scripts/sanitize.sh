#!/usr/bin/env bash
# The sanitizer job: an AddressSanitizer + UndefinedBehaviorSanitizer build (host code, CUDA and
# gRPC off, into ./build-asan or $QWEN3MOE_ASAN_BUILD_DIR) and the unit and mpi tests under it.
# UB halts the test; leaks fail it except OpenMPI's own (tests/sanitize/lsan.supp; the
# sanitize_leak_canary test proves a leak in our frames still fails).
# usage: scripts/sanitize.sh [extra ctest arguments]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${QWEN3MOE_ASAN_BUILD_DIR:-$repo/build-asan}"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -g1 -DNDEBUG" -DQWEN3MOE_SANITIZE=ON -DQWEN3MOE_CUDA=OFF \
  -DQWEN3MOE_GRPC=OFF -DQWEN3MOE_WERROR=ON >/dev/null
ninja -C "$build"
# Full unwinding at each allocation: the system libraries lack frame pointers, and a leak's stack
# must reach their frames for the suppressions (by library) to match it.
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$repo/tests/sanitize/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0"
# OpenMPI unloads its components at MPI_Finalize; kept loaded, their frames have names.
export OMPI_MCA_mca_base_component_disable_dlclose=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
ctest --test-dir "$build" --output-on-failure -j 2 -L 'unit|mpi' "$@"
