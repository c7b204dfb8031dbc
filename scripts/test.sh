#!/usr/bin/env bash
# Sets up everything (Debian packages, the Qwen3 tokenizer files), checks the formatting and
# the layering of the includes, builds with warnings as errors, and runs every test (CTest
# labels unit, lint, mpi, e2e; gpu tests skip without a GPU); then the sanitizer job (the unit
# and mpi tests under ASan + UBSan, scripts/sanitize.sh) and each fuzz target for 20 s
# (scripts/fuzz.sh). QWEN3MOE_QUICK=1 skips those two.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
bash scripts/check-format.sh
bash scripts/check-layering.sh
QWEN3MOE_TOKENIZER_DIR="$(bash scripts/fetch-tokenizer.sh | tail -n 1)"
export QWEN3MOE_TOKENIZER_DIR
QWEN3MOE_OPENAI_SDK="$(bash scripts/fetch-openai-sdk.sh | tail -n 1)"
export QWEN3MOE_OPENAI_SDK
bash scripts/build.sh -DQWEN3MOE_WERROR=ON
ctest --test-dir "${QWEN3MOE_BUILD_DIR:-$repo/build}" --output-on-failure -j 2 "$@"
if [ "${QWEN3MOE_QUICK:-0}" != 1 ]; then
  bash scripts/sanitize.sh
  bash scripts/fuzz.sh 20
fi
