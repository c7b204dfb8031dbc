# Sourced by the e2e scripts: what a `qwen3moe serve` writes to its log once it serves.
# wait_for_serving LOG: waits up to 60 s for the "serving" line, then sets $addr (gRPC
# HOST:PORT) and $http (the OpenAI base URL, empty with --no-http); returns 1 when none came.
wait_for_serving() {
  local log="$1"
  addr=""
  http=""
  for _ in $(seq 1 600); do
    if grep -q '^serving ' "$log" 2>/dev/null; then
      addr="$(grep -o ' on 127.0.0.1:[0-9]*' "$log" | head -n 1 | cut -c5-)"
      http="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -n 1)"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# wait_for_health ADDR STATUS: asks the gRPC health of ADDR every 0.1 s for up to 15 s until it
# answers STATUS; sets $health to the last answer; returns 1 when STATUS never came.
wait_for_health() {
  health=""
  for _ in $(seq 1 150); do
    health="$("$bin" client --addr "$1" --health 2>/dev/null)"
    [ "$health" = "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
