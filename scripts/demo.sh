#!/usr/bin/env bash
# Sets up everything, builds, makes a tiny random Qwen3-MoE model (configs/tiny-demo.json) with
# the real Qwen3 tokenizer, describes it, and generates from it. The weights are random, so the
# text is too; the point is the whole path from prompt to streamed tokens.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
bash scripts/build.sh
bin="${QWEN3MOE_BUILD_DIR:-$repo/build}/qwen3moe"
model="$repo/demo-model"
"$bin" init-random --config configs/tiny-demo.json --out "$model" --seed 1
bash scripts/fetch-tokenizer.sh "$model" >/dev/null
echo "== qwen3moe inspect --model demo-model"
"$bin" inspect --model "$model"
echo
echo "== qwen3moe generate --model demo-model --ids 9707,11,847,5562,374 --max-new-tokens 24 --temperature 0"
"$bin" generate --model "$model" --ids 9707,11,847,5562,374 --max-new-tokens 24 --temperature 0
echo
echo "== the same with --json"
"$bin" generate --model "$model" --ids 9707,11,847,5562,374 --max-new-tokens 8 --temperature 0.8 --seed 7 --json
