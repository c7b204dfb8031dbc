#!/usr/bin/env bash
# Fetches the official OpenAI SDK for Node.js (the npm package openai@7.59.0, no dependencies of
# its own) into a cache folder, checked by the sha256 of its tarball, for the e2e tests that
# drive the HTTP API as a user's program does.
#
# usage: scripts/fetch-openai-sdk.sh
#   cache: $QWEN3MOE_CACHE/openai-sdk if QWEN3MOE_CACHE is set, else <repo>/.cache/openai-sdk
# Prints the node_modules folder holding `openai` on its last stdout line.
set -euo pipefail

package="openai@7.59.0"
tarball_sha256=7f1deacae8d17efc9c02622b032851c7e28e148b62b1da7747eb8b426ea4dba9

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${QWEN3MOE_CACHE:+$QWEN3MOE_CACHE/openai-sdk}"
cache="${cache:-$repo/.cache/openai-sdk}"
modules="$cache/node_modules"

if [ -f "$modules/openai/.verified-$tarball_sha256" ]; then
  echo "fetch-openai-sdk: $modules/openai already holds the verified package" >&2
else
  command -v npm >/dev/null || { echo "fetch-openai-sdk: npm not found (run scripts/setup.sh)" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo "fetch-openai-sdk: npm pack $package" >&2
  tarball="$(cd "$work" && npm pack --silent "$package" | tail -n 1)"
  [ -f "$work/$tarball" ] || { echo "fetch-openai-sdk: npm pack produced no tarball" >&2; exit 1; }
  actual="$(sha256sum "$work/$tarball" | cut -d' ' -f1)"
  if [ "$actual" != "$tarball_sha256" ]; then
    echo "fetch-openai-sdk: sha256 mismatch for $tarball: got $actual, want $tarball_sha256" >&2
    exit 1
  fi
  tar -xzf "$work/$tarball" -C "$work"
  mkdir -p "$modules"
  rm -rf "$modules/openai"
  mv "$work/package" "$modules/openai"
  touch "$modules/openai/.verified-$tarball_sha256"
  echo "fetch-openai-sdk: verified $package in $modules" >&2
fi
echo "$modules"
