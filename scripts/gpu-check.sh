#!/usr/bin/env bash
# The GPU check: every gpu-labelled test (each CUDA op against its CPU twin, the fixture parity
# through --backend cuda) and a small benchmark, with a summary table. The GPU machine has
# CUDA but none of our Debian libraries, so the build happens here and travels:
#
#   bash scripts/gpu-check.sh prepare   # here: build (no gRPC, no MPI) into build-gpu and copy
#                                       # the binaries + the shared libraries they need to .gpu-carry
#   bash scripts/gpu-check.sh run       # on the GPU machine (carry .gpu-carry): tests + bench
#
# With the device tool: run(command="bash scripts/gpu-check.sh run", carry=[".gpu-carry"]).
# It finishes well inside 8 minutes on one H100.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
carry="$repo/.gpu-carry"
mode="${1:-run}"

if [ "$mode" = "prepare" ]; then
  set -e
  export PATH="/usr/local/cuda/bin:$PATH"
  build="$repo/build-gpu"
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQWEN3MOE_CUDA=ON \
    -DQWEN3MOE_GRPC=OFF -DQWEN3MOE_MPI=OFF -DQWEN3MOE_WERROR=ON >/dev/null
  ninja -C "$build" qwen3moe test_cuda_ops
  rm -rf "$carry" && mkdir -p "$carry/lib" "$carry/bin"
  cp "$build/qwen3moe" "$build/tests/test_cuda_ops" "$carry/bin/"
  # Every shared library outside glibc and the CUDA toolkit (the GPU machine has those).
  for lib in $(ldd "$carry/bin/qwen3moe" "$carry/bin/test_cuda_ops" | awk '/=> \//{print $3}' | sort -u); do
    case "$lib" in
      */libc.so*|*/libm.so*|*/libpthread.so*|*/libdl.so*|*/librt.so*|*/ld-linux*|*/libcuda.so*|/usr/local/cuda*) ;;
      *) cp -L "$lib" "$carry/lib/" ;;
    esac
  done
  echo "gpu-check: prepared $(du -sh "$carry" | cut -f1) in .gpu-carry ($(ls "$carry/lib" | wc -l) libraries)"
  exit 0
fi

[ "$mode" = "run" ] || { echo "usage: gpu-check.sh prepare|run" >&2; exit 2; }
[ -x "$carry/bin/qwen3moe" ] || { echo "gpu-check: run 'scripts/gpu-check.sh prepare' first (here)" >&2; exit 2; }
export LD_LIBRARY_PATH="$carry/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export QWEN3MOE_FIXTURES_OVERRIDE="$repo/tests/fixtures"
cd "$repo"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
declare -a rows
status=0

start=$SECONDS
"$carry/bin/test_cuda_ops" --gtest_color=no 2>&1 | tee /tmp/gpu-check-tests.log
rc=${PIPESTATUS[0]}
# Each test's result line ends with its time, "(N ms)"; the summary repeats names without it.
passed=$(grep -c '^\[       OK \] .*ms)$' /tmp/gpu-check-tests.log || true)
failed=$(grep -c '^\[  FAILED  \] .*ms)$' /tmp/gpu-check-tests.log || true)
skipped=$(grep -c '^\[  SKIPPED \] .*ms)$' /tmp/gpu-check-tests.log || true)
rows+=("gpu tests (CUDA vs CPU twins, fixture parity)|$passed passed, $failed failed, $skipped skipped|$((SECONDS - start)) s")
[ "$rc" -eq 0 ] || status=1

start=$SECONDS
out=$("$carry/bin/qwen3moe" logits --backend cuda --model tests/fixtures/hf-tiny/moe_a --ids 1,2,3,4,5 --out /tmp/gpu-logits.npy 2>&1)
rc=$?
rows+=("qwen3moe logits --backend cuda (moe_a)|exit $rc ${out:0:80}|$((SECONDS - start)) s")
[ "$rc" -eq 0 ] || status=1

start=$SECONDS
bench=$(timeout 300 "$carry/bin/qwen3moe" bench --backend cuda --random-weights --config configs/cpu-bench.json \
  --prompt-len 512 --decode-tokens 64 2>&1)
rc=$?
echo "$bench"
rows+=("bench --backend cuda (configs/cpu-bench.json)|exit $rc; $(echo "$bench" | grep -E '^(prefill|decode)' | tr -s ' ' | cut -c1-90 | paste -sd ';' -)|$((SECONDS - start)) s")
[ "$rc" -eq 0 ] || status=1

echo
echo "== gpu-check summary"
printf '%-52s | %-70s | %s\n' "check" "result" "time"
for r in "${rows[@]}"; do IFS='|' read -r a b c <<<"$r"; printf '%-52s | %-70s | %s\n' "$a" "$b" "$c"; done
exit $status
