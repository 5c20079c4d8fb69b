#!/usr/bin/env bash
# 8-bit AdamW against float32 AdamW on the CPU: a preset (default `tiny`) trained for the same steps, from the same seed,
# on the bundled corpus, once with each optimizer; prints both final held-out losses and their relative gap
# (issue 17's bar: within 1%). The two runs go side by side, one engine thread each.
#   bash bench/cpu-train-adamw8bit.sh [steps] [results-dir] [preset]    (after npm run build)
set -euo pipefail
steps=${1:-200}
out=${2:-$(mktemp -d /tmp/andromeda-adamw8bit-XXXXXX)}
preset=${3:-tiny}
mkdir -p "$out"
cli="$(cd "$(dirname "$0")/.." && pwd)/dist/src/cli/main.js"
for optimizer in adamw adamw8bit; do
  ANDROMEDA_THREADS=1 node "$cli" train --preset "$preset" --device cpu --optimizer "$optimizer" --steps "$steps" \
    --lr 0.003 --warmup 20 --eval-every 0 --checkpoint-every 0 --final-eval-tokens 65536 --seed 0 \
    --out "$out/$optimizer" > "$out/$optimizer.log" 2>&1 &
done
wait
for optimizer in adamw adamw8bit; do echo "== $optimizer"; grep -E '^(optimizer|batches|final eval)' "$out/$optimizer.log"; done
node -e '
const fs = require("fs");
const loss = (o) => Number(/final eval step \d+: held-out loss ([\d.]+)/.exec(fs.readFileSync(process.argv[1] + "/" + o + ".log", "utf8"))[1]);
const a = loss("adamw"), b = loss("adamw8bit");
console.log(`RESULT held-out loss: adamw ${a}, adamw8bit ${b}, relative gap ${(100 * (b - a) / a).toFixed(3)}%`);
' "$out"
