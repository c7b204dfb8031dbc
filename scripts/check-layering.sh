#!/usr/bin/env bash
# Names every source file that includes a header of a part it may not depend on. The parts and
# what each may include mirror the libraries of CMakeLists.txt (launcher -> {rpc, bench} ->
# core -> parallel -> kernels, and the finer rules inside a layer: core/text knows no model and
# no MPI, only the launcher names the MPI and NCCL communicators). The build enforces the same
# through each library's header view; this script says it in one line per offending include,
# and also catches what the compiler cannot see: a relative include ("../core/x.h").
# usage: scripts/check-layering.sh [REPO_ROOT]; exit 1 when any include breaks a rule.
set -euo pipefail
root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$root"

# The part a repository path belongs to ("" for none).
part_of() {
  case "$1" in
    kernels/backend.h | kernels/common/*) echo kernels/common ;;
    kernels/cpu/*) echo kernels/cpu ;;
    kernels/cuda/*) echo kernels/cuda ;;
    parallel/comm/mpi/*) echo parallel/comm/mpi ;;
    parallel/comm/nccl/*) echo parallel/comm/nccl ;;
    parallel/comm/*) echo parallel/comm ;;
    parallel/moe/*) echo parallel/moe ;;
    parallel/profile/*) echo parallel/profile ;;
    parallel/*/*) echo "" ;;
    parallel/*) echo parallel ;;
    core/text/*) echo core/text ;;
    core/checkpoint/*) echo core/checkpoint ;;
    core/model/*) echo core/model ;;
    core/engine/*) echo core/engine ;;
    bench/*) echo bench ;;
    rpc/*) echo rpc ;;
    launcher/*) echo launcher ;;
    *) echo "" ;;
  esac
}

# What each part may include besides itself (all of it, not only its direct dependencies).
kernels="kernels/common"
parallel_all="parallel parallel/comm parallel/moe parallel/profile $kernels"
core_all="core/engine core/model core/checkpoint core/text $parallel_all"
declare -A may_include=(
  [kernels/common]=""
  [kernels/cpu]="$kernels"
  [kernels/cuda]="$kernels"
  [parallel]="$kernels"
  [parallel/comm]="$kernels"
  [parallel/comm/mpi]="parallel/comm $kernels"
  [parallel/comm/nccl]="parallel/comm kernels/cuda $kernels"
  [parallel/profile]="parallel/comm $kernels"
  [parallel/moe]="parallel parallel/profile parallel/comm $kernels"
  [core/text]="$kernels"
  [core/checkpoint]="$kernels"
  [core/model]="core/checkpoint $parallel_all"
  [core/engine]="$core_all"
  [bench]="$core_all kernels/cpu kernels/cuda"
  [rpc]="$core_all"
  [launcher]="rpc bench $core_all parallel/comm/mpi parallel/comm/nccl kernels/cpu kernels/cuda"
)

bad=0
while IFS= read -r file; do
  from="$(part_of "$file")"
  if [ -z "$from" ]; then
    echo "$file: in no part of the layering (a new folder? add it here and to CMakeLists.txt)"
    bad=1
    continue
  fi
  while IFS=: read -r line header; do
    [ -z "$line" ] && continue
    case "$header" in
      ../* | */../* | ./*)
        echo "$file:$line: relative include \"$header\" (name it from the repository root)"
        bad=1
        continue
        ;;
    esac
    to="$(part_of "$header")"
    if [ -z "$to" ]; then
      echo "$file:$line: \"$header\" is not a header of any part (name it from the repository root)"
      bad=1
    elif [ "$to" != "$from" ] && [[ " ${may_include[$from]} " != *" $to "* ]]; then
      echo "$file:$line: includes $header ($to); $from may include only: ${may_include[$from]:-nothing else}"
      bad=1
    fi
  done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" |
    sed 's/^\([0-9]*\):.*"\([^"]*\)".*/\1:\2/')
done < <(find kernels parallel core bench rpc launcher -type f \
  \( -name '*.h' -o -name '*.cpp' -o -name '*.cu' -o -name '*.cuh' \) | sort)

if [ "$bad" -ne 0 ]; then
  echo "check-layering: includes against the layer order (see the lines above)" >&2
  exit 1
fi
echo "check-layering: every include follows the layer order"
