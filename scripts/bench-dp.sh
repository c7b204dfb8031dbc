#!/usr/bin/env bash
# Attention data parallelism against tensor parallelism on the same ranks, same session: for
# each split, `qwen3moe serve` under mpirun, `qwen3moe client --load` at a fixed concurrency,
# and from /metrics the MoE all-to-all bytes rank 0 sent and the seconds it spent in them.
# usage: scripts/bench-dp.sh MODEL_DIR [RANKS=2] [REQUESTS=48] [CONCURRENCY=8] [NEW_TOKENS=32]
#   e.g. qwen3moe init-random --config configs/cpu-bench.json --out /tmp/cpubench
#        scripts/bench-dp.sh /tmp/cpubench
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${QWEN3MOE_BIN:-$repo/build/qwen3moe}"
model="${1:?usage: scripts/bench-dp.sh MODEL_DIR [RANKS] [REQUESTS] [CONCURRENCY] [NEW_TOKENS]}"
ranks="${2:-2}" requests="${3:-48}" concurrency="${4:-8}" new_tokens="${5:-32}"
work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill -KILL "$server" 2>/dev/null; rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

printf '%-14s %10s %10s %9s %9s %8s %14s %12s %10s\n' split "out tok/s" "req/s" "TTFT p50" \
  "ITL p50" steps "a2a MB (r0)" "a2a s (r0)" "MB/step"
for dp in 1 "$ranks"; do
  tp=$((ranks / dp))
  # The same sequences at once either way: --max-batch is per DP group (and sizes the MoE
  # exchange's fixed capacity, ceil(max-batch / tp) rows per rank).
  log="$work/serve-dp$dp.log"
  mpirun -np "$ranks" --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 "$bin" serve \
    --model "$model" --dp "$dp" --port 0 --http-port 0 --max-batch $((concurrency / dp)) \
    --kv-blocks 2048 >"$log" 2>&1 &
  server=$!
  for _ in $(seq 1 1200); do grep -q '^serving ' "$log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^serving ' "$log" || { echo "no serving line:"; cat "$log"; exit 1; }
  addr="$(grep -o ' on 127.0.0.1:[0-9]*' "$log" | head -n 1 | cut -c5-)"
  http="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -n 1)"
  # A short warm-up (page faults, first shapes), then the measured load.
  "$bin" client --addr "$addr" --load "$concurrency" --concurrency "$concurrency" \
    --prompt-len 32 --max-new-tokens 4 >/dev/null
  curl -s "$http/metrics" >"$work/before"
  "$bin" client --addr "$addr" --load "$requests" --concurrency "$concurrency" --prompt-len 32 \
    --max-new-tokens "$new_tokens" >"$work/load"
  curl -s "$http/metrics" >"$work/after"
  sum() { awk -v m="$1" '$1 ~ "^qwen3moe:"m"[{]" {s += $2} END {printf "%.6f", s}' "$2"; }
  bytes=$(awk -v a="$(sum a2a_bytes_total "$work/after")" -v b="$(sum a2a_bytes_total "$work/before")" \
    'BEGIN {printf "%.1f", (a - b) / 1e6}')
  secs=$(awk -v a="$(sum a2a_seconds_total "$work/after")" -v b="$(sum a2a_seconds_total "$work/before")" \
    'BEGIN {printf "%.2f", a - b}')
  steps=$(awk -v a="$(sum num_engine_steps_total "$work/after")" \
    -v b="$(sum num_engine_steps_total "$work/before")" 'BEGIN {printf "%d", a - b}')
  tps=$(grep -o '[0-9.]* output tokens/s' "$work/load" | cut -d' ' -f1)
  rps=$(grep -o '[0-9.]* requests/s' "$work/load" | cut -d' ' -f1)
  ttft=$(grep -o 'TTFT ms: p50 [0-9.]*' "$work/load" | grep -o '[0-9.]*$')
  itl=$(grep -o 'ITL  ms: p50 [0-9.]*' "$work/load" | grep -o '[0-9.]*$')
  per_step=$(awk -v b="$bytes" -v s="$steps" 'BEGIN {printf "%.2f", (s > 0 ? b / s : 0)}')
  printf '%-14s %10s %10s %9s %9s %8s %14s %12s %10s\n' "dp $dp x tp $tp" "$tps" "$rps" \
    "$ttft" "$itl" "$steps" "$bytes" "$secs" "$per_step"
  kill -TERM "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=
done
