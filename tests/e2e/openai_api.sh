#!/usr/bin/env bash
# The OpenAI-compatible HTTP API end to end: a tiny random Qwen3-MoE with the real vocabulary
# and tokenizer (so chat, tools and text work), served with --http-port 0, driven by the official
# openai npm package (tests/e2e/openai_sdk.mjs) and by curl (routes, raw errors, a full queue),
# and its /metrics checked by Prometheus' own promtool.
# usage: openai_api.sh QWEN3MOE_BIN REPO_ROOT [NP]; needs QWEN3MOE_TOKENIZER_DIR and
# QWEN3MOE_OPENAI_SDK (scripts/test.sh sets both); exit 77 (skipped) without them.
set -uo pipefail
bin="$1"
repo="$2"
np="${3:-1}"
[ -n "${QWEN3MOE_TOKENIZER_DIR:-}" ] && [ -f "$QWEN3MOE_TOKENIZER_DIR/tokenizer.json" ] ||
  { echo "skipped: QWEN3MOE_TOKENIZER_DIR is not set"; exit 77; }
[ -n "${QWEN3MOE_OPENAI_SDK:-}" ] && [ -d "$QWEN3MOE_OPENAI_SDK/openai" ] ||
  { echo "skipped: QWEN3MOE_OPENAI_SDK is not set (scripts/fetch-openai-sdk.sh)"; exit 77; }
command -v node >/dev/null || { echo "skipped: node not found"; exit 77; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }

"$bin" init-random --config "$repo/configs/tiny-demo.json" --out "$work/tiny" --seed 3 >/dev/null 2>&1 ||
  { echo "FAIL init-random"; exit 1; }
cp "$QWEN3MOE_TOKENIZER_DIR"/tokenizer.json "$QWEN3MOE_TOKENIZER_DIR"/tokenizer_config.json "$work/tiny/"

# Starts a server (extra flags in "$@") and sets $http to its base URL.
start() {
  local log="$work/serve$1.log"
  shift
  if [ "$np" -gt 1 ]; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np "$np" --oversubscribe \
      --bind-to none -x OMP_NUM_THREADS=1 "$bin" serve --model "$work/tiny" --port 0 \
      --http-port 0 "$@" >"$log" 2>&1 &
  else
    "$bin" serve --model "$work/tiny" --port 0 --http-port 0 "$@" >"$log" 2>&1 &
  fi
  pids+=($!)
  http=""
  for _ in $(seq 1 600); do
    http="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -n 1)"
    grep -q '^serving ' "$log" && [ -n "$http" ] && return 0
    sleep 0.1
  done
  echo "FAIL no serving line:"
  sed 's/^/  serve: /' "$log"
  exit 1
}

start 1 --max-batch 4
(cd "$work" && ln -s "$QWEN3MOE_OPENAI_SDK" node_modules && cp "$repo/tests/e2e/openai_sdk.mjs" . &&
  node openai_sdk.mjs "$http/v1" tiny) | tee "$work/sdk.out"
sdk="$(tail -n 1 "$work/sdk.out")"
case "$sdk" in *" passed, 0 failed") ok "openai SDK: $sdk" ;; *) bad "openai SDK: $sdk" ;; esac

# gRPC chat answers through the same parser: its text equals the HTTP chat content (greedy).
grpc_addr="$(grep -o ' on 127.0.0.1:[0-9]*' "$work/serve1.log" | head -n 1 | cut -c5-)"
printf '{"messages": [{"role": "user", "content": "Name a color"}], "enable_thinking": false}' >"$work/chat.json"
"$bin" client --addr "$grpc_addr" --chat "$work/chat.json" --temperature 0 --max-new-tokens 12 \
  --json 2>/dev/null | tail -n 1 >"$work/grpc.json"
curl -s "$http/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "Name a color"}],
  "temperature": 0, "max_tokens": 12, "chat_template_kwargs": {"enable_thinking": false}}' >"$work/http.json"
same="$(node -e '
  const fs = require("fs");
  const g = JSON.parse(fs.readFileSync(process.argv[1])), h = JSON.parse(fs.readFileSync(process.argv[2]));
  const m = h.choices[0].message;
  console.log(g.text === (m.content ?? "") && g.reasoning_text === (m.reasoning_content ?? "") &&
              Array.isArray(g.tool_calls) && g.completion_tokens === h.usage.completion_tokens);
' "$work/grpc.json" "$work/http.json" 2>&1)"
[ "$same" = true ] && ok "gRPC chat: text, reasoning_text and tool_calls equal the HTTP chat answer" ||
  bad "gRPC vs HTTP chat: $same $(cat "$work/grpc.json") $(cat "$work/http.json")"

# curl: the raw shapes.
code() { curl -s -o "$work/body" -w '%{http_code}' "$@"; }
[ "$(code "$http/v1/models")" = 200 ] && grep -q '"id":"tiny"' "$work/body" && ok "GET /v1/models" ||
  bad "GET /v1/models: $(cat "$work/body")"
[ "$(code "$http/v1/models/tiny")" = 200 ] && [ "$(code "$http/v1/models/other")" = 404 ] &&
  ok "GET /v1/models/NAME: 200, and 404 for another name" || bad "GET /v1/models/NAME"
[ "$(code "$http/v2/nothing")" = 404 ] && grep -q '"error"' "$work/body" &&
  ok "an unknown route is a 404 in OpenAI's error shape" || bad "unknown route: $(cat "$work/body")"
[ "$(code "$http/v1/completions" -d '{"prompt": ')" = 400 ] && grep -q 'not valid JSON' "$work/body" &&
  ok "a body that is not JSON is a 400" || bad "bad JSON: $(cat "$work/body")"
c="$(code "$http/v1/chat/completions" -d '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0, "stream": true}')"
grep -q '^data: \[DONE\]' "$work/body" && grep -q '"chat.completion.chunk"' "$work/body" && [ "$c" = 200 ] &&
  ok "curl: chat streams chat.completion.chunk events, then [DONE]" || bad "curl stream: $c $(head -c 300 "$work/body")"
{ printf '{"prompt": "'; head -c 40000000 /dev/zero | tr '\0' a; printf '"}'; } >"$work/huge.json"
c="$(code "$http/v1/completions" --data-binary @"$work/huge.json")"
[ "$c" = 413 ] && ok "a body over the limit is a 413" || bad "huge body: $c"
[ "$(code "$http/health")" = 200 ] && ok "GET /health 200 while serving" || bad "health"
code "$http/metrics" >/dev/null
if command -v promtool >/dev/null; then
  # Exit 1 is a parse error; 3 lint findings, of which we accept only the one vLLM's own
  # "vllm:" names draw too (colons are meant for recording rules; dashboards expect them).
  promtool check metrics <"$work/body" >"$work/promtool.out" 2>&1
  rc=$?
  others="$(grep -v "metric names should not contain ':'" "$work/promtool.out")"
  { [ "$rc" = 0 ] || { [ "$rc" = 3 ] && [ -z "$others" ]; }; } &&
    ok "promtool check metrics parses /metrics (lint: only the vLLM-style ':' names)" ||
    bad "promtool (exit $rc): $(cat "$work/promtool.out")"
fi
for name in num_requests_running num_requests_waiting kv_cache_usage_perc prompt_tokens_total \
  generation_tokens_total time_to_first_token_seconds_bucket inter_token_latency_seconds_count \
  e2e_request_latency_seconds_sum request_success_total; do
  grep -q "^qwen3moe:$name{" "$work/body" || { bad "/metrics lacks qwen3moe:$name"; continue; }
done
experts="$(grep -c '^qwen3moe:expert_tokens_total{' "$work/body")"
[ "$experts" -gt 0 ] && ok "/metrics counts tokens per expert ($experts layer-expert series)" ||
  bad "no qwen3moe:expert_tokens_total"
if [ "$np" -gt 1 ]; then
  a2a="$(grep '^qwen3moe:a2a_bytes_total{.*phase="dispatch"' "$work/body" | head -n 1 | awk '{print $2}')"
  awk -v b="${a2a:-0}" 'BEGIN { exit !(b > 0) }' && ok "/metrics: all-to-all bytes per layer ($a2a)" ||
    bad "no a2a_bytes_total at np $np"
fi
gen="$(grep '^qwen3moe:generation_tokens_total{' "$work/body" | awk '{print $2}')"
[ "${gen:-0}" -gt 100 ] && ok "/metrics counted $gen generated tokens" || bad "generation_tokens_total $gen"

# A full queue: one running, one waiting (seen in /metrics), then a third is a 429.
start 2 --max-batch 1 --max-queue 1
long='{"prompt": [1, 2, 3], "max_tokens": 4000, "ignore_eos": true, "temperature": 0}'
gauge() { curl -s "$http/metrics" | grep "^qwen3moe:$1{" | awk '{print $2}'; }
# The second only once the first runs: sent together, the second may find the first still in
# the queue of one and get the 429 itself.
curl -s -o /dev/null --max-time 120 "$http/v1/completions" -d "$long" &
for _ in $(seq 1 1500); do
  [ "$(gauge num_requests_running)" = 1 ] && break
  sleep 0.04
done
curl -s -o /dev/null --max-time 120 "$http/v1/completions" -d "$long" &
full=""
for _ in $(seq 1 1500); do
  [ "$(gauge num_requests_running)" = 1 ] && [ "$(gauge num_requests_waiting)" = 1 ] && full=1 && break
  sleep 0.04
done
[ -n "$full" ] || bad "never saw one request running and one waiting"
c="$(code --max-time 30 "$http/v1/completions" -d "$long")"
[ "$c" = 429 ] && grep -q 'queue is full' "$work/body" && ok "a full queue is a 429" ||
  bad "full queue: $c $(cat "$work/body")"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
