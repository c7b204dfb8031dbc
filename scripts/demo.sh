#!/usr/bin/env bash
# Sets up everything, builds, makes a tiny random Qwen3-MoE (configs/tiny-demo.json) with the
# real Qwen3 tokenizer, serves it from two ranks (`mpirun -np 2 qwen3moe serve`, through
# launcher/qwen3moe-launch), waits for health SERVING, streams a chat reply with the client,
# runs a short load, and shuts the server down. The weights are random, so the words are too:
# the demo shows the whole path; point --model at a real Qwen3 folder for real text.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
bash scripts/build.sh
bin="${QWEN3MOE_BUILD_DIR:-$repo/build}/qwen3moe"
model="$repo/demo-model"
"$bin" init-random --config configs/tiny-demo.json --out "$model" --seed 1
bash scripts/fetch-tokenizer.sh "$model" >/dev/null
cat > "$model/chat.json" <<'JSON'
{"messages": [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "Write a haiku about experts and routers."}],
 "enable_thinking": false}
JSON

echo "== qwen3moe inspect --model demo-model --tp 2"
"$bin" inspect --model "$model" --tp 2
echo
echo "== launcher/qwen3moe-launch --np 2 -- serve --model demo-model --port 0"
log="$(mktemp)"
OMP_NUM_THREADS=1 launcher/qwen3moe-launch --np 2 --gpus-per-node 0 --bin "$bin" -- \
  serve --model "$model" --port 0 --http-port 0 --max-batch 8 >"$log" 2>&1 &
server=$!
stop_server() {
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap 'stop_server; rm -f "$log"' EXIT
addr=""
for _ in $(seq 1 600); do
  addr="$(grep -o 'on [0-9.]*:[0-9]*' "$log" | head -n 1 | cut -c4- || true)"
  [ -n "$addr" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "demo: the server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$log"; echo "demo: the server did not report its address" >&2; exit 1; }
cat "$log"
"$bin" client --addr "$addr" --health --wait 60
echo
echo "== qwen3moe client --chat demo-model/chat.json (streamed, sampled with seed 7)"
"$bin" client --addr "$addr" --chat "$model/chat.json" --max-new-tokens 32 --temperature 0.8 \
  --top-p 0.95 --seed 7
echo
echo "== qwen3moe client --load 16 --concurrency 4 (random 32-token prompts, 16 new tokens each)"
"$bin" client --addr "$addr" --load 16 --concurrency 4 --prompt-len 32 --max-new-tokens 16
echo
echo "== shutting the server down (SIGTERM)"
stop_server
trap 'rm -f "$log"' EXIT
tail -n 3 "$log"
