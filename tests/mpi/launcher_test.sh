#!/usr/bin/env bash
# launcher/qwen3moe-launch: the mpirun line it builds, and a real 2-rank run that gives the
# single-rank tokens (CTest label mpi).
# usage: launcher_test.sh QWEN3MOE_BINARY LAUNCHER FIXTURES_DIR
set -uo pipefail
bin="$1"; launch="$2"; fixtures="$3"
fail=0; passed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

line="$(NCCL_DEBUG=INFO "$launch" --np 4 --gpus-per-node 0 --bin "$bin" --dry-run -- logits --model m --ids 1 --out x.npy)"
[[ "$line" == mpirun\ -np\ 4\ --bind-to\ none* ]] && ok "dry run starts with mpirun -np 4" || bad "dry run: $line"
[[ "$line" == *"-x NCCL_DEBUG"* ]] && ok "NCCL_DEBUG passed through" || bad "no -x NCCL_DEBUG in: $line"
[[ "$line" == *"--rank-exec $bin logits --model m --ids 1 --out x.npy"* ]] && ok "command forwarded" || bad "forwarding: $line"

"$launch" --np nope --bin "$bin" -- generate >/dev/null 2>&1 && bad "--np nope accepted" || ok "--np nope rejected"

args=(generate --model "$fixtures/hf-tiny/moe_a" --ids 1,2,3 --max-new-tokens 8 --temperature 0 --json)
one="$("$bin" "${args[@]}" | tail -n 1 | grep -o '"output_ids":\[[^]]*\]')"
two="$(OMP_NUM_THREADS=1 timeout 120 "$launch" --np 2 --gpus-per-node 0 --bin "$bin" -- "${args[@]}" 2>/dev/null | tail -n 1 | grep -o '"output_ids":\[[^]]*\]')"
[ -n "$one" ] && [ "$one" = "$two" ] && ok "2 ranks through the launcher: $two" || bad "1 rank '$one' vs 2 ranks '$two'"

echo "$passed passed, $fail failed"
[ $fail -eq 0 ]
