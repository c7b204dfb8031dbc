#!/usr/bin/env bash
# The format and layering checks catch what they are for: on a copy of the sources they pass,
# then fail, naming the file, once one arrow of the layering is reverted (kernels/cpu includes
# core), once a relative include climbs out of its folder, and once a file is mis-formatted.
# usage: lint_scripts_test.sh REPO_ROOT
set -euo pipefail
repo="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
fresh_copy() {
  rm -rf "$work/tree"
  mkdir -p "$work/tree"
  (cd "$repo" && cp -r .clang-format scripts kernels parallel core bench rpc launcher "$work/tree/")
  mkdir -p "$work/tree/tests"
  cp -r "$repo/tests/unit" "$work/tree/tests/"
}
expect_fail() {  # expect_fail SCRIPT TEXT: the script exits 1 and its output contains TEXT
  if out="$(bash "$work/tree/scripts/$1" "$work/tree" 2>&1)"; then fail "$1 passed: $2"; fi
  grep -qF "$2" <<<"$out" || fail "$1 did not name '$2'; it said: $out"
  echo "ok: $1 fails naming $2"
}

fresh_copy
bash "$work/tree/scripts/check-layering.sh" "$work/tree" >/dev/null || fail "layering of the tree"
bash "$work/tree/scripts/check-format.sh" "$work/tree" >/dev/null 2>&1 || fail "format of the tree"
echo "ok: both pass on the sources as they are"

sed -i '0,/#include "kernels\/cpu\/ops.h"/s//#include "core\/model\/model.h"\n#include "kernels\/cpu\/ops.h"/' \
  "$work/tree/kernels/cpu/matmul.cpp"
expect_fail check-layering.sh "kernels/cpu/matmul.cpp:"

fresh_copy
echo '#include "../engine/engine.h"' >>"$work/tree/core/model/kv_cache.cpp"
expect_fail check-layering.sh 'core/model/kv_cache.cpp:'

fresh_copy
echo '#include "parallel/comm/mpi/mpi_communicator.h"' >>"$work/tree/core/text/utf8.cpp"
expect_fail check-layering.sh 'core/text/utf8.cpp:'

fresh_copy
sed -i 's/^namespace qwen3moe {$/namespace   qwen3moe{/' "$work/tree/parallel/topology.cpp"
expect_fail check-format.sh 'parallel/topology.cpp:'
echo "1 passed, 0 failed"
