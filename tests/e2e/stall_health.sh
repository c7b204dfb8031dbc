#!/usr/bin/env bash
# Health must not look fine while the engine is stuck (CTest label e2e): with the engine made
# to stall at its second step (QWEN3MOE_DEBUG_STALL=0:1) and --stall-timeout 1, health goes
# from SERVING to NOT_SERVING once a request is waiting. Then a step that fails
# (QWEN3MOE_DEBUG_STALL=0:1:fail) must end the requests waiting on it, gRPC and HTTP, with an
# error, and the server must exit non-zero rather than hang; and slow but live steps after an
# idle spell must not look stuck.
# usage: stall_health.sh QWEN3MOE_BINARY FIXTURES_DIR
set -uo pipefail
bin="$1"; fixtures="$2"
. "$(dirname "${BASH_SOURCE[0]}")/serve_log.sh"
work="$(mktemp -d)"
cleanup() { pkill -KILL -f "$work" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL $1"; sed 's/^/  serve: /' "$work/serve.log" 2>/dev/null; echo "0 passed, 1 failed"; exit 1; }

cp -r "$fixtures/hf-tiny/moe_a" "$work/model"
QWEN3MOE_DEBUG_STALL=0:1 "$bin" serve --model "$work/model" --port 0 --http-port 0 --stall-timeout 1 \
  >"$work/serve.log" 2>&1 &
wait_for_serving "$work/serve.log" || fail "no serving line"
before="$("$bin" client --addr "$addr" --health 2>/dev/null)"
[ "$before" = "SERVING" ] || fail "health before any work: '$before'"
[ -n "$http" ] || fail "no http line"
code="$(curl -s -o /dev/null -w '%{http_code}' "$http/health")"
[ "$code" = "200" ] || fail "http /health before any work: $code"

# Step 0 is this request's prefill; the engine stops before step 1.
"$bin" client --addr "$addr" --ids 1,2,3 --max-new-tokens 8 --timeout-ms 60000 >/dev/null 2>&1 &
start=$SECONDS
wait_for_health "$addr" NOT_SERVING || fail "health stayed '$health' while the engine was stuck"
echo "ok   health SERVING before work, NOT_SERVING $((SECONDS - start)) s after the engine stalled"
code="$(curl -s -o /dev/null -w '%{http_code}' "$http/health")"
[ "$code" = "503" ] || fail "http /health while the engine was stuck: $code"
body="$(curl -s -w ' %{http_code}' "$http/v1/completions" -d '{"prompt": [1, 2], "max_tokens": 2}')"
case "$body" in *'"error"'*' 503') ;; *) fail "a completion while stuck: $body" ;; esac
echo "ok   http /health 200 before, 503 while stuck; a new completion gets 503"
pkill -KILL -f "$work/model" 2>/dev/null
wait 2>/dev/null

# The first step after an idle spell hangs (step 0, the request's prefill): nothing had run yet,
# so only admitted-but-unfinished work can show the stall.
QWEN3MOE_DEBUG_STALL=0:0 "$bin" serve --model "$work/model" --port 0 --http-port 0 \
  --stall-timeout 1 >"$work/serve.log" 2>&1 &
wait_for_serving "$work/serve.log" || fail "no serving line (idle then hang)"
sleep 2  # idle for longer than --stall-timeout first
[ "$("$bin" client --addr "$addr" --health 2>/dev/null)" = SERVING ] || fail "idle health"
"$bin" client --addr "$addr" --ids 1,2,3 --max-new-tokens 8 --timeout-ms 60000 >/dev/null 2>&1 &
wait_for_health "$addr" NOT_SERVING ||
  fail "health stayed '$health' while the first step after idle hung"
# The first "running" is the engine's (each DP group has its own after it).
running="$("$bin" client --addr "$addr" --stats 2>/dev/null | grep -o '"running": *[0-9]*' |
  head -n 1 | grep -o '[0-9]*$')"
[ "$running" = 1 ] || fail "GetStats shows running=$running while the step hangs"
echo "ok   the first step after an idle spell hangs: NOT_SERVING, GetStats running 1"
pkill -KILL -f "$work/model" 2>/dev/null
wait 2>/dev/null

# No false alarm: after an idle spell longer than --stall-timeout, a request whose steps are
# slow (0.4 s each) but live keeps health SERVING the whole time it runs.
QWEN3MOE_DEBUG_STALL=0:0:slow400 "$bin" serve --model "$work/model" --port 0 --http-port 0 \
  --stall-timeout 1 >"$work/serve.log" 2>&1 &
wait_for_serving "$work/serve.log" || fail "no serving line (slow steps)"
sleep 2
"$bin" client --addr "$addr" --ids 1,2,3 --max-new-tokens 8 --timeout-ms 60000 \
  >"$work/slow.out" 2>&1 &
client=$!
polls=0
while kill -0 $client 2>/dev/null; do
  health="$("$bin" client --addr "$addr" --health 2>/dev/null)"
  [ "$health" = SERVING ] || fail "health '$health' during slow but live steps after idle"
  polls=$((polls + 1))
  sleep 0.1
done
wait $client || fail "the slow request failed: $(cat "$work/slow.out")"
[ $polls -ge 5 ] || fail "only $polls health polls while the slow request ran"
echo "ok   idle, then slow but live steps: SERVING on all $polls polls"
pkill -KILL -f "$work/model" 2>/dev/null
wait 2>/dev/null

QWEN3MOE_DEBUG_STALL=0:1:fail "$bin" serve --model "$work/model" --port 0 --http-port 0 \
  >"$work/serve.log" 2>&1 &
server=$!
wait_for_serving "$work/serve.log" && [ -n "$http" ] || fail "no http line (failing engine)"
code="$(curl -s -o "$work/fail.out" -w '%{http_code}' --max-time 30 "$http/v1/completions" \
  -d '{"prompt": [1, 2, 3], "max_tokens": 8}')"
[ "$code" = 500 ] && grep -q 'fails at step 1' "$work/fail.out" ||
  fail "a request on a failed step: $code $(cat "$work/fail.out")"
for _ in $(seq 1 100); do kill -0 $server 2>/dev/null || break; sleep 0.1; done
kill -0 $server 2>/dev/null && fail "the server still runs after its engine failed"
wait $server; rc=$?
[ "$rc" -ne 0 ] || fail "the server exited 0 after its engine failed"
echo "ok   a failed step: the waiting request got 500 naming the failure, serve exited $rc"
echo "5 passed, 0 failed"
