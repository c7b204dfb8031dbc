#!/usr/bin/env bash
# clang-tidy (.clang-tidy: bugprone-*, performance-*, modernize-use-override, the naming rules)
# over the C++ files a change touches: by default those that differ from HEAD (staged, unstaged
# or untracked), `--base REV` those changed since REV, `--all` every one. CUDA files are left
# out (their compile commands are nvcc's). Needs a configured build (compile_commands.json in
# ./build or $QWEN3MOE_BUILD_DIR). Not run in CI: the whole tree takes about 9 minutes on 2 cores.
# A changed header is checked through the .cpp files beside it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
build="${QWEN3MOE_BUILD_DIR:-$repo/build}"
[ -f "$build/compile_commands.json" ] || {
  echo "tidy: no $build/compile_commands.json; run scripts/build.sh first" >&2
  exit 2
}
mode=head base=HEAD
case "${1:-}" in
  --all) mode=all ;;
  --base) base="${2:?--base needs a revision}" mode=base ;;
  "") ;;
  *) echo "usage: scripts/tidy.sh [--all | --base REV]" >&2; exit 2 ;;
esac
source scripts/source-files.sh
if [ "$mode" = all ]; then
  changed="$(qwen3moe_source_files)"
else
  changed="$( (git diff --name-only "$base" -- ; git ls-files --others --exclude-standard) | sort -u)"
fi
files=()
while IFS= read -r f; do
  [ -n "$f" ] && [ -f "$f" ] || continue
  case "$f" in
    tests/fixtures/*) continue ;;
    *.cpp) files+=("$f") ;;
    *.h) for cpp in "${f%.h}.cpp" "$(dirname "$f")"/*.cpp; do
           [ -f "$cpp" ] && files+=("$cpp") && break
         done ;;
  esac
done <<<"$changed"
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u | sed '/^$/d')
if [ "${#files[@]}" -eq 0 ]; then
  echo "tidy: no changed C++ files"
  exit 0
fi
echo "tidy: ${#files[@]} files"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option \
    >"$out" 2>/dev/null || true
if grep -q ': warning: \|: error: ' "$out"; then
  grep -A3 ': warning: \|: error: ' "$out"
  echo "tidy: $(grep -c ': warning: \|: error: ' "$out") findings" >&2
  exit 1
fi
echo "tidy: clean"
