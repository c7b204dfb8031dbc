#!/usr/bin/env bash
# A rank that dies ends the server (CTest label e2e): under mpirun -np 2, SIGKILL rank 1 while
# a gRPC stream and a (not streamed) HTTP completion are open; the job must end non-zero within
# seconds, both clients must fail (UNAVAILABLE; the HTTP connection closed or a 5xx), and no rank
# may be left running.
# usage: killed_rank.sh QWEN3MOE_BINARY MPIEXEC FIXTURES_DIR
set -uo pipefail
bin="$1"; mpiexec="$2"; fixtures="$3"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
cleanup() { pkill -KILL -f "$work" 2>/dev/null; pkill -KILL -P $$ 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL $1"; [ -f "$work/serve.log" ] && sed 's/^/  serve: /' "$work/serve.log"; echo "0 passed, 1 failed"; exit 1; }

# A copy of the fixture under $work, so every process of this test carries $work in its argv.
cp -r "$fixtures/hf-tiny/moe_a" "$work/model"
"$mpiexec" -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 "$bin" serve \
  --model "$work/model" --port 0 --http-port 0 --collective-timeout 5 >"$work/serve.log" 2>&1 &
job=$!
addr=""
for _ in $(seq 1 600); do
  addr="$(grep -o 'on 127.0.0.1:[0-9]*' "$work/serve.log" | head -n 1 | cut -c4-)"
  [ -n "$addr" ] && break
  kill -0 $job 2>/dev/null || fail "the server did not start"
  sleep 0.1
done
[ -n "$addr" ] || fail "no serving line"

"$bin" client --addr "$addr" --ids 1,2,3 --max-new-tokens 4000 --ignore-eos >"$work/client.out" 2>"$work/client.err" &
client=$!
http="$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.log" | head -n 1)"
[ -n "$http" ] || fail "no http line"
curl -s -o "$work/http.out" -w '%{http_code}' --max-time 60 "$http/v1/completions" \
  -d '{"prompt": [1, 2, 3], "max_tokens": 4000, "ignore_eos": true}' >"$work/http.code" &
http_client=$!
sleep 1
rank1=""
for pid in $(pgrep -f "$bin serve --model $work/model"); do
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && rank1=$pid
done
[ -n "$rank1" ] || fail "rank 1 not found"
kill -KILL "$rank1"
start=$SECONDS

for _ in $(seq 1 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
kill -0 $job 2>/dev/null && fail "the job still runs 30 s after rank 1 died"
wait $job; job_rc=$?
[ $job_rc -ne 0 ] || fail "mpirun exited 0 after a rank died"
for _ in $(seq 1 100); do kill -0 $client 2>/dev/null || break; sleep 0.1; done
kill -0 $client 2>/dev/null && fail "the client's stream is still open"
wait $client; client_rc=$?
[ $client_rc -ne 0 ] || fail "the client's request ended successfully"
for _ in $(seq 1 100); do kill -0 $http_client 2>/dev/null || break; sleep 0.1; done
kill -0 $http_client 2>/dev/null && fail "the HTTP request is still open"
http_code="$(cat "$work/http.code")"
case "$http_code" in 2*) fail "the HTTP request ended with $http_code: $(cat "$work/http.out")" ;; esac
pgrep -f "$bin serve --model $work/model" >/dev/null && fail "a rank is still running"
echo "ok   rank 1 killed: job ended in $((SECONDS - start)) s with exit $job_rc; client exit $client_rc: $(tail -n 1 "$work/client.err"); http $http_code"
echo "1 passed, 0 failed"
