#!/usr/bin/env bash
# The GPU check: every gpu-labelled test (each CUDA op against its CPU twin, the fixture parity
# through --backend cuda, the device-memory communicators), the host-staged communicator and a
# 2-rank logits parity under mpirun, and a small benchmark, with a summary table. The GPU machine
# has CUDA and NCCL but none of our Debian libraries and no MPI, so the build happens here and
# travels:
#
#   bash scripts/gpu-check.sh prepare   # here: build (MPI on, no gRPC) into build-gpu and copy
#                                       # the binaries + the shared libraries they need + a
#                                       # relocatable copy of Debian's Open MPI to .gpu-carry
#   bash scripts/gpu-check.sh run       # on the GPU machine (carry .gpu-carry): tests + bench
#
# With the device tool: run(command="bash scripts/gpu-check.sh run", carry=[".gpu-carry"]).
# Estimated at 8 to 10 minutes on one H100 (it has never run: no GPU has been lent yet); give it
# timeout_s 600 and nothing else in that call.
#
# Open MPI travels relocated: mpirun (orterun), its libraries, the plugins of its pkglibdir
# (minus the InfiniBand/UCX/libfabric/PSM transports and their libraries: one node, shared
# memory), its help files and PMIx's plugins, found there through OPAL_PREFIX, OPAL_PKGLIBDIR,
# OPAL_PKGDATADIR and PMIX_PREFIX/PMIX_PKGLIBDIR/PMIX_PKGDATADIR (about 12 MB, 4 MB packed). Checked here with
# the system's Open MPI hidden (unshare -m, bind mounts over its folders and libraries): mpirun
# -np 2 of an mpi test passes through the copy, and fails without the variables.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
carry="$repo/.gpu-carry"
mode="${1:-run}"
gpu_tests=(test_cuda_ops test_cuda_fp8 test_cuda_communicators)
mpi_gpu_tests=(test_host_staged_communicator)

# bundle_openmpi DIR LIBDIR: the launcher and plugins into DIR, their libraries into LIBDIR.
bundle_openmpi() {
  local out="$1" libdir="$2" pkglib pkgdata so pmix
  pkglib=$(ompi_info --path pkglibdir --parsable | sed -n 's/^path:pkglibdir://p')
  pkgdata=$(ompi_info --path pkgdatadir --parsable | sed -n 's/^path:pkgdatadir://p')
  mkdir -p "$out/bin" "$out/plugins" "$out/pmix/lib" "$out/pmix/share" "$libdir"
  cp -L "$(command -v orterun || command -v mpirun)" "$out/bin/mpirun"
  local skip='ucx|ofi|psm|openib|verbs|usnic|java|portals'
  local skiplib='libuc[pstm]|libfabric|libpsm|libibverbs|librdmacm|libnl-|libefa|libinfinipath'
  for so in "$pkglib"/*.so; do
    basename "$so" | grep -Eq "$skip" && continue
    ldd "$so" | grep -Eq "$skiplib" && continue
    cp "$so" "$out/plugins/"
  done
  cp -r "$pkgdata" "$out/share"
  pmix=$(dirname "$(readlink -f "$(ldd "$pkglib"/mca_pmix_ext3x.so | awk '/libpmix/{print $3}')")")
  if [ -d "$pmix/pmix" ]; then cp -r "$pmix/pmix" "$out/pmix/lib/"; fi
  if [ -d "$pmix/../share/pmix" ]; then cp -r "$pmix/../share/pmix" "$out/pmix/share/"; fi
  copy_libs "$libdir" "$out/bin/mpirun" "$out"/plugins/*.so
}

# copy_libs DIR FILE...: every shared library the files need, outside glibc and the CUDA
# toolkit (the GPU machine has those: libcudart, cuBLAS, NCCL).
copy_libs() {
  local dir="$1" lib
  shift
  for lib in $(ldd "$@" | awk '/=> \//{print $3}' | sort -u); do
    case "$lib" in
      */libc.so*|*/libm.so*|*/libpthread.so*|*/libdl.so*|*/librt.so*|*/ld-linux*|*/libcuda.so*|/usr/local/cuda*) ;;
      *) cp -L "$lib" "$dir/" ;;
    esac
  done
}

if [ "$mode" = "prepare" ]; then
  set -e
  export PATH="/usr/local/cuda/bin:$PATH"
  build="$repo/build-gpu"
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQWEN3MOE_CUDA=ON \
    -DQWEN3MOE_GRPC=OFF -DQWEN3MOE_MPI=ON -DQWEN3MOE_WERROR=ON >/dev/null
  ninja -C "$build" qwen3moe "${gpu_tests[@]}" "${mpi_gpu_tests[@]}"
  rm -rf "$carry" && mkdir -p "$carry/lib" "$carry/bin"
  cp "$build/qwen3moe" "$carry/bin/"
  for t in "${gpu_tests[@]}" "${mpi_gpu_tests[@]}"; do cp "$build/tests/$t" "$carry/bin/"; done
  copy_libs "$carry/lib" "$carry"/bin/*
  # Packed (gzip: OpenBLAS alone is 36 MB, Open MPI 12) so the carry stays inside its 64 MiB.
  libs=$(ls "$carry/lib" | wc -l)
  tar -C "$carry" -czf "$carry/lib.tar.gz" lib && rm -rf "$carry/lib"
  tmp=$(mktemp -d)
  bundle_openmpi "$tmp/openmpi" "$tmp/openmpi/lib"
  tar -C "$tmp" -czf "$carry/openmpi.tar.gz" openmpi
  rm -rf "$tmp"
  bytes=$(du -sb "$carry" | cut -f1)
  echo "gpu-check: prepared $((bytes / 1048576)) MiB in .gpu-carry ($libs libraries, packed; the device tool carries at most 64 MiB)"
  [ "$bytes" -le $((64 * 1048576)) ] || { echo "gpu-check: .gpu-carry is over 64 MiB" >&2; exit 1; }
  exit 0
fi

[ "$mode" = "run" ] || { echo "usage: gpu-check.sh prepare|run" >&2; exit 2; }
[ -x "$carry/bin/qwen3moe" ] || { echo "gpu-check: run 'scripts/gpu-check.sh prepare' first (here)" >&2; exit 2; }
# The carried libraries and Open MPI, unpacked, where they now lie (see the top of this file).
rm -rf /tmp/gpu-check-lib /tmp/gpu-check-mpi && mkdir -p /tmp/gpu-check-lib /tmp/gpu-check-mpi
tar -C /tmp/gpu-check-lib -xzf "$carry/lib.tar.gz" || echo "gpu-check: no libraries unpacked" >&2
tar -C /tmp/gpu-check-mpi -xzf "$carry/openmpi.tar.gz" || echo "gpu-check: no Open MPI unpacked" >&2
om=/tmp/gpu-check-mpi/openmpi
export LD_LIBRARY_PATH="/tmp/gpu-check-lib/lib:$om/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export PATH="$om/bin:$PATH" OPAL_PREFIX="$om" OPAL_PKGLIBDIR="$om/plugins" \
  OPAL_PKGDATADIR="$om/share" PMIX_PREFIX="$om/pmix" PMIX_PKGLIBDIR="$om/pmix/lib/pmix" \
  PMIX_PKGDATADIR="$om/pmix/share/pmix"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers often forbid the cross-process reads (CMA) of the shared-memory transport.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpirun=(mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1)
# The GPU machine's CUDA may lack NCCL while its PyTorch wheels carry one (nvidia-nccl-cu13):
# use that copy for whatever the toolkit does not have.
if ldd "$carry/bin/qwen3moe" | grep -q 'not found'; then
  for lib in $(ldd "$carry/bin/qwen3moe" | awk '/not found/{print $1}'); do
    found=$(find /opt /usr/local /usr/lib -name "$lib" -print -quit 2>/dev/null)
    [ -n "$found" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$found")" &&
      echo "gpu-check: $lib from $(dirname "$found")"
  done
fi
if missing=$(ldd "$carry/bin/qwen3moe" | grep 'not found'); then
  echo "gpu-check: libraries not found on this machine (NCCL is expected with CUDA):" >&2
  echo "$missing" >&2
fi
export QWEN3MOE_FIXTURES_OVERRIDE="$repo/tests/fixtures"
cd "$repo"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
declare -a rows
status=0

# gtest_row TITLE COMMAND...: runs a gtest binary (or mpirun of one) and adds its counts.
gtest_row() {
  local title="$1" rc passed failed skipped start=$SECONDS
  shift
  timeout 300 "$@" --gtest_color=no 2>&1 | tee /tmp/gpu-check-tests.log
  rc=${PIPESTATUS[0]}
  # Each test's result line ends with its time, "(N ms)"; the summary repeats names without it.
  passed=$(grep -c '^\[       OK \] .*ms)$' /tmp/gpu-check-tests.log || true)
  failed=$(grep -c '^\[  FAILED  \] .*ms)$' /tmp/gpu-check-tests.log || true)
  skipped=$(grep -c '^\[  SKIPPED \] .*ms)$' /tmp/gpu-check-tests.log || true)
  rows+=("$title|exit $rc: $passed passed, $failed failed, $skipped skipped|$((SECONDS - start)) s")
  [ "$rc" -eq 0 ] || status=1
}

gtest_row "gpu tests (CUDA vs CPU twins, fixture parity)" "$carry/bin/test_cuda_ops"
gtest_row "gpu fp8 kernels (vs CPU twins, fixture GEMMs)" "$carry/bin/test_cuda_fp8"
gtest_row "gpu communicators (local, host-staged, NCCL world 1)" "$carry/bin/test_cuda_communicators"
# Rank 0 alone prints gtest's lines: the counts are rank 0's, the exit status every rank's.
gtest_row "mpirun -np 2: host-staged cpu+cuda, NCCL (>= 2 GPUs)" "${mpirun[@]}" "$carry/bin/test_host_staged_communicator"

# The CUDA op tests again under compute-sanitizer's memcheck (out-of-bounds and misaligned
# device accesses of kernels written without a GPU; API errors are the checks' own), within
# the seconds each row gives. A runtime whose sanitizer reports "Device not supported", or no sanitizer at all,
# gives a row saying so and fails nothing; a timeout fails only if errors were found before it.
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
  /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
# memcheck_row TEST SECONDS [GTEST_FILTER]: one row for the gtest binary TEST under memcheck.
memcheck_row() {
  local test="$1" limit="$2" filter="${3:-*}" start=$SECONDS rc errors hits passed failed verdict
  local log=/tmp/gpu-check-memcheck-$1.log
  if [ -z "$sanitizer" ]; then
    rows+=("compute-sanitizer memcheck $test|not run: no compute-sanitizer on this machine|0 s")
    return
  fi
  timeout "$limit" "$sanitizer" --tool memcheck --report-api-errors no --error-exitcode 3 --print-limit 50 \
    "$carry/bin/$test" --gtest_color=no --gtest_filter="$filter" >"$log" 2>&1
  rc=$?
  tail -n 60 "$log"
  errors=$(sed -n 's/^========= ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$log" | tail -n 1)
  hits=$(grep -c '^=========     \(Invalid\|Misaligned\|Out of bounds\)\|^========= \(Invalid\|Misaligned\|Out of bounds\|Program hit\)' "$log" || true)
  passed=$(grep -c '^\[       OK \] .*ms)$' "$log" || true)
  failed=$(grep -c '^\[  FAILED  \] .*ms)$' "$log" || true)
  local unsupported='device not supported\|^=========.*not supported on this device\|sanitizer is not supported'
  if grep -qi "$unsupported" "$log"; then
    verdict="not run: $(grep -i -m1 "$unsupported" "$log" | cut -c1-60)"
  elif [ "$rc" -eq 124 ]; then
    verdict="timed out at $limit s: $passed tests passed, ${errors:-$hits} memcheck errors so far"
    [ "${errors:-$hits}" -eq 0 ] || status=1
  else
    verdict="exit $rc: ${errors:-?} memcheck errors; $passed passed, $failed failed"
    [ "$rc" -eq 0 ] && [ "${errors:-1}" -eq 0 ] || status=1
  fi
  rows+=("compute-sanitizer memcheck $test|$verdict|$((SECONDS - start)) s")
}
memcheck_row test_cuda_ops 120
memcheck_row test_cuda_fp8 60 'CudaOps.*'  # the kernels; the model test runs above

start=$SECONDS
out=$("$carry/bin/qwen3moe" logits --backend cuda --kv-dtype f32 --model tests/fixtures/hf-tiny/moe_a --ids 1,2,3,4,5 --out /tmp/gpu-logits.npy 2>&1)
rc=$?
rows+=("qwen3moe logits --backend cuda (moe_a)|exit $rc ${out:0:80}|$((SECONDS - start)) s")
[ "$rc" -eq 0 ] || status=1

# Two ranks against one: host-staged MPI on device buffers (ranks share the GPU when there is
# one), then NCCL when every rank has its own GPU; the logits within the parity tests' bound.
# compare_npy A B [RTOL]: max |A - B| within RTOL * (1 + max|A|) (default 1e-3).
compare_npy() {
  python3 - "$1" "$2" "${3:-1e-3}" <<'PY'
import struct, sys
def load(path):
    data = open(path, "rb").read()
    n = struct.unpack("<H", data[8:10])[0]
    body = data[10 + n:]
    return struct.unpack("<%df" % (len(body) // 4), body)
a, b = load(sys.argv[1]), load(sys.argv[2])
assert len(a) == len(b), "shapes differ"
err = max(abs(x - y) for x, y in zip(a, b))
bound = float(sys.argv[3]) * (1 + max(abs(x) for x in a))
print("max |diff| %.3g (bound %.3g)" % (err, bound))
sys.exit(0 if err <= bound else 1)
PY
}
for comm in mpi nccl; do
  start=$SECONDS
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  if [ "$comm" = nccl ] && [ "$gpus" -lt 2 ]; then
    # One GPU: NCCL must refuse with one line on every rank, naming the shared GPU.
    out=$("${mpirun[@]}" "$carry/bin/qwen3moe" logits --backend cuda --kv-dtype f32 --comm nccl \
      --model tests/fixtures/hf-tiny/moe_a --ids 1,2,3,4,5 --out /tmp/gpu-logits-np2.npy 2>&1)
    rc=$?
    lines=$(echo "$out" | grep -c 'share GPU' || true)
    verdict="exit $rc, $lines ranks named the shared GPU (expected: exit 1, 2)"
    { [ "$rc" -ne 0 ] && [ "$lines" -eq 2 ]; } || status=1
    rows+=("mpirun -np 2 logits --comm nccl on 1 GPU: refused|$verdict|$((SECONDS - start)) s")
    continue
  fi
  out=$("${mpirun[@]}" "$carry/bin/qwen3moe" logits --backend cuda --kv-dtype f32 --comm "$comm" \
    --model tests/fixtures/hf-tiny/moe_a --ids 1,2,3,4,5 --out /tmp/gpu-logits-np2.npy 2>&1)
  rc=$?
  echo "$out"
  if [ "$rc" -eq 0 ]; then
    verdict=$(compare_npy /tmp/gpu-logits.npy /tmp/gpu-logits-np2.npy 2>&1) || { rc=1; }
  else
    verdict="${out:0:80}"
  fi
  rows+=("mpirun -np 2 logits --backend cuda --comm $comm = np 1|exit $rc; $verdict|$((SECONDS - start)) s")
  [ "$rc" -eq 0 ] || status=1
done

# The bf16 all-to-all payload across two ranks of one GPU (host-staged): within the bf16 bound
# the CPU tests measure (3% of 1 + max|logit|) of the f32 single rank.
start=$SECONDS
out=$("${mpirun[@]}" "$carry/bin/qwen3moe" logits --backend cuda --kv-dtype f32 --comm mpi --a2a-dtype bf16 \
  --model tests/fixtures/hf-tiny/moe_a --ids 1,2,3,4,5 --out /tmp/gpu-logits-bf16.npy 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then
  verdict=$(compare_npy /tmp/gpu-logits.npy /tmp/gpu-logits-bf16.npy 3e-2 2>&1) || rc=1
else
  verdict="${out:0:80}"
fi
rows+=("mpirun -np 2 logits --a2a-dtype bf16 (host-staged) ~ np 1|exit $rc; $verdict|$((SECONDS - start)) s")
[ "$rc" -eq 0 ] || status=1

# The KV cache in bf16 and fp8 on the device (one rank) against the f32 cache, on the dense
# fixture (the MoE ones flip experts under rounding): the CPU measures 0.0025 (bf16) and 0.038
# (fp8) of 1 + max|logit| for this prompt.
"$carry/bin/qwen3moe" logits --backend cuda --kv-dtype f32 --model tests/fixtures/hf-tiny/dense_a \
  --ids 1,2,3,4,5 --out /tmp/gpu-logits-dense.npy > /dev/null 2>&1
for kv in "bf16 1e-2" "fp8 1e-1"; do
  read -r kv bound <<<"$kv"
  start=$SECONDS
  out=$("$carry/bin/qwen3moe" logits --backend cuda --kv-dtype "$kv" \
    --model tests/fixtures/hf-tiny/dense_a --ids 1,2,3,4,5 --out /tmp/gpu-logits-kv.npy 2>&1)
  rc=$?
  if [ "$rc" -eq 0 ]; then
    verdict=$(compare_npy /tmp/gpu-logits-dense.npy /tmp/gpu-logits-kv.npy "$bound" 2>&1) || rc=1
  else
    verdict="${out:0:80}"
  fi
  rows+=("logits --backend cuda --kv-dtype $kv ~ f32 KV|exit $rc; $verdict|$((SECONDS - start)) s")
  [ "$rc" -eq 0 ] || status=1
done

# The fixed-capacity exchange (decode's) on device buffers: 5 tokens over 2 ranks fit a
# capacity of 4 per rank, so the prefill takes it; the same logits as one rank.
start=$SECONDS
out=$("${mpirun[@]}" "$carry/bin/qwen3moe" logits --backend cuda --kv-dtype f32 --comm mpi --a2a-capacity 4 \
  --model tests/fixtures/hf-tiny/moe_a --ids 1,2,3,4,5 --out /tmp/gpu-logits-fixed.npy 2>&1)
rc=$?
if [ "$rc" -eq 0 ]; then
  verdict=$(compare_npy /tmp/gpu-logits.npy /tmp/gpu-logits-fixed.npy 2>&1) || rc=1
else
  verdict="${out:0:80}"
fi
rows+=("mpirun -np 2 logits --a2a-capacity 4 (host-staged) = np 1|exit $rc; $verdict|$((SECONDS - start)) s")
[ "$rc" -eq 0 ] || status=1

# a2a-bench --op dispatch on device buffers: the model's ExpertDispatch over host-staged MPI
# (two ranks sharing the GPU), f32 and bf16 rows, the counted and the fixed-capacity exchange
# (decode's); #wrong must be 0.
for variant in "f32 0" "bf16 0" "f32 128" "bf16 128"; do
  read -r dtype capacity <<<"$variant"
  start=$SECONDS
  out=$("${mpirun[@]}" "$carry/bin/qwen3moe" a2a-bench --op dispatch --backend cuda --comm mpi \
    --a2a-dtype "$dtype" --a2a-capacity "$capacity" 2>&1)
  rc=$?
  echo "$out"
  rows+=("mpirun -np 2 a2a-bench --op dispatch --backend cuda $dtype cap $capacity|exit $rc; $(echo "$out" | grep -oE 'bandwidth: [0-9.]+x|[0-9]+ wrong of [0-9]+' | paste -sd ';' -)|$((SECONDS - start)) s")
  [ "$rc" -eq 0 ] || status=1
done

start=$SECONDS
bench=$(timeout 300 "$carry/bin/qwen3moe" bench --backend cuda --random-weights --config configs/cpu-bench.json \
  --prompt-len 512 --decode-tokens 64 2>&1)
rc=$?
echo "$bench"
rows+=("bench --backend cuda (configs/cpu-bench.json)|exit $rc; $(echo "$bench" | grep -E '^(prefill|decode)' | tr -s ' ' | cut -c1-90 | paste -sd ';' -)|$((SECONDS - start)) s")
[ "$rc" -eq 0 ] || status=1

# Qwen3-30B-A3B shape, weights made on the GPU (61 GB bf16: no file, no host copy), KV for
# 64 x 208 tokens + the 512-token prefill (2.7 GB f32): fits an 80 GB H100. Goals (issue 7): decode b=1 >= 85% and
# b=64 >= 70% of the HBM copy bandwidth over the bytes a step reads; prefill >= 60% of the
# bf16 GEMM rate. One row per figure; the bench's own lines name the kernels behind each.
start=$SECONDS
bench30=$(timeout 300 "$carry/bin/qwen3moe" bench --backend cuda --random-weights --config configs/qwen3-30b-a3b.json \
  --prompt-len 512 --decode-batches 1,16,64 --decode-context 128 --decode-tokens 32 2>&1)
rc=$?
echo "$bench30"
rows+=("bench 30B-A3B shape: ceilings|exit $rc; $(echo "$bench30" | grep -E '^gpu ' | grep -oE '(HBM|GEMM) [0-9]+ (GB|TFLOP)/s' | paste -sd ',' -)|$((SECONDS - start)) s")
rows+=("bench 30B-A3B: prefill 512 tokens|$(echo "$bench30" | grep -E '^prefill' | grep -oE '[0-9.]+ tok/s, [0-9.]+ TFLOP/s = [0-9.]+%' )|")
for b in 1 16 64; do
  for mode in eager graph; do
    line=$(echo "$bench30" | grep -E "^decode b=$b +$mode")
    rows+=("bench 30B-A3B: decode b=$b $mode|$(echo "$line" | grep -oE '[0-9.]+ ms/step, [0-9]+ tok/s|[0-9]+ GB/s = [0-9.]+%|FAILED.*' | paste -sd ';' - | cut -c1-70)|")
  done
done
[ "$rc" -eq 0 ] || status=1

# The same shape as Qwen3-30B-A3B-FP8 (configs/qwen3-30b-a3b-fp8.json: projections e4m3 with
# 128x128 block scales, made on the GPU, 31 GB) with a bf16 KV cache: decode reads about half
# the bytes, so b=1 should come close to twice the bf16 rate above.
start=$SECONDS
bench8=$(timeout 300 "$carry/bin/qwen3moe" bench --backend cuda --random-weights --config configs/qwen3-30b-a3b-fp8.json \
  --kv-dtype bf16 --prompt-len 512 --decode-batches 1,64 --decode-context 128 --decode-tokens 32 2>&1)
rc=$?
echo "$bench8"
rows+=("bench 30B-A3B FP8, bf16 KV: prefill 512 tokens|exit $rc; $(echo "$bench8" | grep -E '^prefill' | grep -oE '[0-9.]+ tok/s, [0-9.]+ TFLOP/s = [0-9.]+%' )|$((SECONDS - start)) s")
for b in 1 64; do
  line=$(echo "$bench8" | grep -E "^decode b=$b +graph")
  rows+=("bench 30B-A3B FP8: decode b=$b graph|$(echo "$line" | grep -oE '[0-9.]+ ms/step, [0-9]+ tok/s|[0-9]+ GB/s = [0-9.]+%|FAILED.*' | paste -sd ';' - | cut -c1-70)|")
done
[ "$rc" -eq 0 ] || status=1

echo
echo "== gpu-check summary"
printf '%-52s | %-70s | %s\n' "check" "result" "time"
for r in "${rows[@]}"; do IFS='|' read -r a b c <<<"$r"; printf '%-52s | %-70s | %s\n' "$a" "$b" "$c"; done
exit $status
