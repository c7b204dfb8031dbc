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
echo "== qwen3moe generate --model demo-model --prompt 'The capital of France is' --max-new-tokens 24 --temperature 0"
"$bin" generate --model "$model" --prompt "The capital of France is" --max-new-tokens 24 --temperature 0
echo
cat > "$model/chat.json" <<'JSON'
{"messages": [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "Write a haiku about experts and routers."}],
 "enable_thinking": false}
JSON
echo "== qwen3moe generate --model demo-model --chat demo-model/chat.json --json (sampled, seed 7)"
"$bin" generate --model "$model" --chat "$model/chat.json" --max-new-tokens 16 --temperature 0.8 --top-p 0.95 --seed 7 --json
echo
echo "(The weights are random, so the words are too: the demo shows the path from prompt to"
echo " streamed tokens. Point --model at a real Qwen3 checkpoint folder for real text.)"
