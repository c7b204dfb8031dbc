#!/usr/bin/env bash
# Small edges of the command line (CTest label e2e): --version, a taken --port is one error
# line of ours, an empty --prompt is named, --stats prints numbers as JSON numbers, and the
# per-rank weights line shows a tiny model's split (not "0 0").
# usage: cli_edges.sh QWEN3MOE_BINARY MPIEXEC FIXTURES_DIR
set -uo pipefail
bin="$1"; mpiexec="$2"; fixtures="$3"
. "$(dirname "${BASH_SOURCE[0]}")/serve_log.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
cleanup() { pkill -KILL -f "$work" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
passed=0; failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
cp -r "$fixtures/hf-tiny/moe_a" "$work/model"

v="$("$bin" --version)"
case "$v" in "qwen3moe "[0-9]*.[0-9]*.[0-9]*" ("*")") ok "--version: $v" ;; *) bad "--version: '$v'" ;; esac

"$bin" serve --model "$work/model" --port 0 --http-port 0 >"$work/serve.log" 2>&1 &
wait_for_serving "$work/serve.log" || { echo "FAIL no serving line"; exit 1; }
port="${addr##*:}"

"$bin" serve --model "$work/model" --port "$port" --http-port 0 >/dev/null 2>"$work/busy.err"
rc=$?
lines="$(grep -c . "$work/busy.err")"
[ "$rc" = 1 ] && [ "$lines" = 1 ] && grep -q "port is in use" "$work/busy.err" &&
  ok "a taken --port: exit 1, one line: $(cat "$work/busy.err")" ||
  bad "a taken --port: exit $rc, $lines lines: $(cat "$work/busy.err")"

"$bin" client --addr "$addr" --prompt "" >/dev/null 2>"$work/empty.err"
rc=$?
[ "$rc" = 1 ] && grep -q -- "--prompt is empty" "$work/empty.err" &&
  ok "client --prompt '': $(cat "$work/empty.err")" || bad "client --prompt '': exit $rc $(cat "$work/empty.err")"

stats="$("$bin" client --addr "$addr" --stats 2>/dev/null)"
echo "$stats" | grep -q '"free_kv_blocks":[0-9]' && echo "$stats" | grep -q '"running":0' &&
  ok "client --stats prints int64 fields as numbers" || bad "client --stats: $stats"
info="$("$bin" client --addr "$addr" --info 2>/dev/null)"
echo "$info" | grep -q '"vocab_size":512' && ok "client --info prints numbers" || bad "client --info: $info"

"$mpiexec" -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 "$bin" logits --model "$work/model" \
  --ids 1,2,3 --out "$work/l.npy" >/dev/null 2>"$work/np2.err"
line="$(grep 'weights per rank (MB)' "$work/np2.err")"
case "$line" in *"(MB): 0 0;"*|"") bad "weights per rank: '$line'" ;; *) ok "weights per rank: ${line%%;*}" ;; esac

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
