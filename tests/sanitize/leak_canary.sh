#!/usr/bin/env bash
# Runs leak_canary under the sanitizer job's leak options (scripts/sanitize.sh sets them):
# "clean" must pass, and a leak in our frames, on the main thread or in an OpenMP region, must
# fail with a LeakSanitizer report that names the leaking function.
# usage: leak_canary.sh MPIEXEC LEAK_CANARY
set -uo pipefail
mpiexec="$1" canary="$2"
case "${LSAN_OPTIONS:-}" in
  *suppressions=*) ;;
  *) echo "leak_canary.sh: LSAN_OPTIONS names no suppressions file; run it from scripts/sanitize.sh" >&2
     exit 1 ;;
esac
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
"$mpiexec" -np 2 --oversubscribe --bind-to none "$canary" clean >"$out" 2>&1 || {
  echo "FAIL: the clean run reported a leak or failed (a suppression is missing):"; cat "$out"; exit 1; }
for mode in main omp; do
  if "$mpiexec" -np 2 --oversubscribe --bind-to none "$canary" "$mode" >"$out" 2>&1; then
    echo "FAIL: a leak in our frames ($mode) passed the sanitizer job:"; cat "$out"; exit 1
  fi
  grep -q "leak_canary_allocation" "$out" || {
    echo "FAIL: the $mode run failed without a leak report naming leak_canary_allocation:"; cat "$out"; exit 1; }
  echo "ok: a leak in our frames ($mode) fails the job"
done
echo "ok: the clean run passes"
