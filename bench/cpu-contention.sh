#!/usr/bin/env bash
# CPU training throughput alone and beside one busy process (a shell spinning on one core), the
# laptop-with-a-browser case. Runs `train --preset tiny --steps STEPS --device cpu` RUNS times each way,
# reads tokens/s from each run's metrics.jsonl (train tokens over step time), and prints every
# figure plus the ratio busy / idle. On a 2-core machine a fair share is 2/3.
#   npm run build && bash bench/cpu-contention.sh [runs=3] [steps=150]
# Extra environment (e.g. ANDROMEDA_THREADS) passes through to the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
STEPS=${2:-150}
CLI=dist/src/cli/main.js
[ -f "$CLI" ] || { echo "cpu-contention: $CLI is missing: run npm run build first" >&2; exit 1; }
TMP=$(mktemp -d)
BUSY_PID=
cleanup() {
  if [ -n "$BUSY_PID" ]; then kill "$BUSY_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# Tokens/s of a run from its metrics.jsonl: all train tokens over the time their steps took.
tokens_per_second() {
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    if (!lines.some((r) => r.kind === "train" && r.tokensPerSecond > 0)) { console.error("no train records with tokensPerSecond in " + process.argv[1]); process.exit(1); }
    const records = lines.filter((r) => r.kind === "train" && r.tokensPerSecond > 0);
    const tokens = records.reduce((s, r) => s + r.tokens, 0), seconds = records.reduce((s, r) => s + r.tokens / r.tokensPerSecond, 0);
    console.log(Math.round(tokens / seconds));
  ' "$1"
}

train_once() {  # $1: run directory
  node "$CLI" train --preset tiny --steps "$STEPS" --device cpu --out "$1" --eval-every 0 --final-eval-tokens 4096 --quiet >/dev/null 2>"$1.log" \
    || { echo "cpu-contention: training failed:" >&2; cat "$1.log" >&2; exit 1; }
  tokens_per_second "$1/metrics.jsonl"
}

echo "cpu-contention: $(nproc) CPUs, ANDROMEDA_THREADS=${ANDROMEDA_THREADS:-default}, $RUNS runs of $STEPS steps each way"
idle=()
busy=()
for i in $(seq 1 "$RUNS"); do
  idle+=("$(train_once "$TMP/idle-$i")")
  echo "  idle run $i: ${idle[-1]} tokens/s"
  bash -c 'while :; do :; done' &
  BUSY_PID=$!
  busy+=("$(train_once "$TMP/busy-$i")")
  kill "$BUSY_PID"; wait "$BUSY_PID" 2>/dev/null || true; BUSY_PID=
  echo "  busy run $i: ${busy[-1]} tokens/s (beside one spinning process)"
done
node -e '
  const idle = process.argv[1].split(" ").map(Number), busy = process.argv[2].split(" ").map(Number);
  const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
  const ratio = mean(busy) / mean(idle);
  console.log(`RESULT ${JSON.stringify({ bench: "cpu-contention", cpus: require("os").cpus().length, idle, busy,
    idle_mean: Math.round(mean(idle)), busy_mean: Math.round(mean(busy)), ratio: Math.round(ratio * 1000) / 1000 })}`);
' "${idle[*]}" "${busy[*]}"
