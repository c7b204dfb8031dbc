#!/usr/bin/env bash
# Multi-rank faults end the job quickly with one clear line (CTest label mpi):
# a bad topology or DP split on every rank, and a stalled rank caught by the collective
# watchdog.
# usage: cli_faults.sh QWEN3MOE_BINARY MPIEXEC FIXTURES_DIR
set -uo pipefail
bin="$1"; mpiexec="$2"; fixtures="$3"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run=("$mpiexec" --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
fail=0
check() {  # name, rc, log, expected pattern, max seconds, elapsed
  local name="$1" rc="$2" log="$3" pattern="$4" max="$5" took="$6"
  if [ "$rc" -eq 0 ]; then echo "FAIL $name: exit 0"; fail=1; return; fi
  if ! grep -q -- "$pattern" "$log"; then echo "FAIL $name: no '$pattern' in:"; cat "$log"; fail=1; return; fi
  if [ "$took" -gt "$max" ]; then echo "FAIL $name: took ${took}s > ${max}s"; fail=1; return; fi
  echo "ok   $name (${took}s): $(grep -- "$pattern" "$log" | head -n 1)"
}

log=$(mktemp)
start=$SECONDS
timeout 60 "${run[@]}" -np 3 "$bin" generate --model "$fixtures/hf-tiny/moe_a" --ids 1,2,3 >"$log" 2>&1
rc=$?
check "tp=3 on 4 heads" $rc "$log" "4 attention heads cannot be split over tp=3" 20 $((SECONDS - start))
for r in 0 1 2; do
  grep -q "\[rank $r\] qwen3moe: error: 4 attention heads cannot be split over tp=3" "$log" ||
    { echo "FAIL rank $r did not print the error"; fail=1; }
done

# Bad DP splits: one line on every rank, naming the numbers.
bad_split() {  # name, np, pattern, flags...
  local name="$1" np="$2" pattern="$3"
  shift 3
  start=$SECONDS
  timeout 60 "${run[@]}" -np "$np" "$bin" logits --model "$fixtures/hf-tiny/moe_a" --ids 1,2,3 \
    --out "$log.npy" "$@" >"$log" 2>&1
  check "$name" $? "$log" "$pattern" 20 $((SECONDS - start))
  for r in $(seq 0 $((np - 1))); do
    grep -q "\[rank $r\] qwen3moe: error: $pattern" "$log" ||
      { echo "FAIL $name: rank $r did not print the error"; fail=1; }
  done
}
bad_split "dp 3 on 2 ranks" 2 "--dp 3 does not divide the world of 2 ranks" --dp 3
bad_split "dp 2 x tp 2 on 2 ranks" 2 "--dp 2 x --tp 2 = 4 is not the world of 2 ranks" --dp 2 --tp 2
bad_split "8 experts on 3 ranks" 3 "8 experts cannot be split over ep=3" --dp 3

start=$SECONDS
QWEN3MOE_DEBUG_STALL=1:3 timeout 60 "${run[@]}" -x QWEN3MOE_DEBUG_STALL -np 2 "$bin" generate \
  --model "$fixtures/hf-tiny/moe_a" --ids 1,2,3 --max-new-tokens 8 --temperature 0 \
  --collective-timeout 2 >"$log" 2>&1
rc=$?
check "stalled rank 1" $rc "$log" "did not complete within 2 s: rank 1 did not arrive" 30 $((SECONDS - start))

rm -f "$log" "$log.npy"
[ $fail -eq 0 ] && echo "5 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
