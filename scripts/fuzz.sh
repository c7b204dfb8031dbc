#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang-14 (ASan + UBSan, into ./build-fuzz or
# $QWEN3MOE_FUZZ_BUILD_DIR) and runs each for a bounded time over seed corpora made from the
# fixtures; any crash, timeout, leak or UB fails (exit 1) and leaves the input in the work dir.
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET (default 20)] [TARGET...]
#   e.g. scripts/fuzz.sh 600 fuzz_chat_template   # a longer run of one target
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-20}"
shift || true
build="${QWEN3MOE_FUZZ_BUILD_DIR:-$repo/build-fuzz}"
command -v clang++-14 >/dev/null || { echo "fuzz: clang++-14 not found (scripts/setup.sh)" >&2; exit 1; }

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -g1 -DNDEBUG" \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DQWEN3MOE_FUZZ=ON \
  -DQWEN3MOE_CUDA=OFF -DQWEN3MOE_MPI=OFF -DQWEN3MOE_GRPC=OFF >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_config fuzz_safetensors fuzz_tokenizer_json fuzz_chat_template fuzz_requests)
ninja -C "$build" "${targets[@]}"

work="$(mktemp -d)"
seeds="$repo/tests/fuzz/seeds"
fixtures="$repo/tests/fixtures"
corpus() {  # target -> a fresh corpus folder with its seeds
  local dir="$work/corpus-$1"
  mkdir -p "$dir"
  case "$1" in
    fuzz_config)
      for m in "$fixtures"/hf-tiny/*/; do cp "$m/config.json" "$dir/$(basename "$m").json"; done
      cp "$repo"/configs/*.json "$dir/" ;;
    fuzz_safetensors)
      # The header and the first bytes of the smallest fixture (fuzzing whole tensors adds nothing).
      head -c 65536 "$fixtures/hf-tiny/dense_a/model.safetensors" >"$dir/dense_a.head" ;;
    fuzz_tokenizer_json) cp "$seeds/tokenizer_tiny.json" "$dir/" ;;
    fuzz_chat_template)
      cp "$seeds"/chat_templates/* "$dir/"
      if [ -n "${QWEN3MOE_TOKENIZER_DIR:-}" ] && [ -f "$QWEN3MOE_TOKENIZER_DIR/tokenizer_config.json" ]; then
        node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1])).chat_template)' \
          "$QWEN3MOE_TOKENIZER_DIR/tokenizer_config.json" >"$dir/qwen3.jinja"
      fi ;;
    fuzz_requests) cp "$seeds"/requests/* "$dir/" ;;
  esac
  echo "$dir"
}

failed=0
for t in "${targets[@]}"; do
  dir="$(corpus "$t")"
  # -timeout: one input past 10 s is a hang; -rss_limit_mb: growth past 2 GiB is a failure.
  # -seed: the same exploration order on every run of a commit (the time bound still varies).
  if (cd "$work" && "$build/tests/fuzz/$t" "$dir" -seed=1 -max_total_time="$seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 >"$work/$t.log" 2>&1); then
    echo "fuzz: $t ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$') runs in $seconds s)"
  else
    echo "fuzz: $t FAILED; its log and the input it kept are in $work:"
    tail -n 40 "$work/$t.log"
    failed=1
  fi
done
[ "$failed" -eq 0 ] && rm -rf "$work"
exit "$failed"
