#!/usr/bin/env bash
# The CPU measurement of speculative decoding (bench/results/speculative.md): what a verification and a proposal
# cost (bench/speculative-step-costs.ts), then the InferenceEngine with and without the draft, greedy, batch 1 and
# a few concurrent sequences, ROUNDS rounds each (bench/speculative-engine.ts, which fails if any output differs
# from the target's own), then batch-1 speculativeGenerate outside the engine (bench/speculative-generate.ts, which
# fails the same way). Logs go to LOGS with the machine's state before and after.
#
#   npm run build && DEVICE=cpu bash bench/train-draft-target.sh      # the two models (about 15 minutes)
#   bash bench/speculative-cpu.sh                                     # about 10 minutes on an idle machine
set -euo pipefail
RUN=${RUN:-runs/speculative-cpu}
LOGS=${LOGS:-bench/results/logs/speculative}
KS=${KS:-2,3,4,6}
BATCHES=${BATCHES:-1,2,4}
TOKENS=${TOKENS:-256}
ROUNDS=${ROUNDS:-3}
stamp=$(date -u +%H%M)
mkdir -p "$LOGS"

machine() {
  echo "# $(date -u '+%F %T UTC'); $(uptime | sed 's/.*load average/load average/'); commit $(git rev-parse --short HEAD)"
}

{
  machine
  node dist/bench/speculative-step-costs.js "$RUN/target" "$RUN/draft" 8 256 30 cpu
  machine
} 2>&1 | tee "$LOGS/step-costs-$stamp.log"
{
  machine
  node dist/bench/speculative-engine.js "$RUN/target" "$RUN/draft" "$KS" "$BATCHES" "$TOKENS" cpu "$ROUNDS"
  machine
} 2>&1 | tee "$LOGS/engine-$stamp.log"
{
  machine
  node dist/bench/speculative-generate.js "$RUN/target" "$RUN/draft" "$KS" "$TOKENS" cpu
  machine
} 2>&1 | tee "$LOGS/generate-$stamp.log"
