#!/usr/bin/env bash
# The planner's CPU half on the GPU machine's host CPU (a quieter machine than the 2-core development VM, whose
# speed moves ±20% between runs: bench/results/plan.md). One call, carrying .device, with the pack NAME:
#   bash bench/device/cpu-plan-host.sh NAME calibrate   the host's CPU (lscpu), the engine's kernels on 2 threads,
#                                                       the decode and optimizer calibrations (1 thread, CPU time),
#                                                       training and the threads' handoff (2 threads), then a check
#   bash bench/device/cpu-plan-host.sh NAME check       the planner check (bench/cpu-plan.ts) twice, 2 and 1 threads
# Logs go to $OUT/logs.tar.xz. The GPU is left idle: nothing else runs on the host's cores meanwhile.
set -uo pipefail
pack=${1:?pack}; what=${2:?calibrate or check}
W=/tmp/w; mkdir -p $W
T0=$(date +%s); BUDGET=${BUDGET:-560}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH
tar xJf .device/node_modules.tar.xz
rm -rf dist build/Release; mkdir -p build/Release; tar xJf .device/$pack/dist.tar.xz
xz -dc .device/$pack/andromeda_cpu.node.xz > build/Release/andromeda_cpu.node
xz -dc .device/$pack/andromeda_cuda.node.xz > build/Release/andromeda_cuda.node
step() {  # step NAME SECONDS COMMAND...
  local name=$1 lim=$2; shift 2; local l; l=$(left)
  (( l < 20 )) && { echo "SKIP $name (budget)"; return; }
  (( lim > l - 10 )) && lim=$(( l - 10 )); local t; t=$(date +%s)
  echo "# load average before: $(cat /proc/loadavg)" > $W/$name.log
  timeout $lim "$@" >> $W/$name.log 2>&1; local rc=$?
  echo "== $name rc=$rc t=$(( $(date +%s) - t ))s"; grep -E "^\|" $W/$name.log | tail -12 | cut -c1-260; }
{ lscpu; echo; nproc; cat /proc/loadavg; free -g; } > $W/host.log 2>&1
grep -E "Model name|^CPU\(s\)|MHz|Thread|Socket|L2|L3|Flags" $W/host.log | cut -c1-200
if [[ $what == calibrate ]]; then
  step kernels 90 env ANDROMEDA_THREADS=2 node dist/bench/cpu-kernels.js --quick --out $W/cpu-kernels.md
  cp $W/cpu-kernels.md $W/cpu-kernels-table.md 2>/dev/null; grep -E "GFLOP|GHz|peak" $W/cpu-kernels.md | head -12
  step decode 130 env ANDROMEDA_THREADS=1 node dist/bench/cpu-plan-calibrate.js --part decode --jsonl $W/decode.jsonl
  step optimizer 50 env ANDROMEDA_THREADS=1 node dist/bench/cpu-plan-calibrate.js --part optimizer --jsonl $W/optimizer.jsonl
  step training 110 env ANDROMEDA_THREADS=2 node dist/bench/cpu-plan-calibrate.js --part training --jsonl $W/training.jsonl
  step threads 90 env ANDROMEDA_THREADS=2 node dist/bench/cpu-plan-threads.js --jsonl $W/threads.jsonl
  step check 90 node dist/bench/cpu-plan.js --threads 2,1 --jsonl $W/check.jsonl
else
  step check-1 150 node dist/bench/cpu-plan.js --threads 2,1 --jsonl $W/check-1.jsonl
  step check-2 150 node dist/bench/cpu-plan.js --threads 2,1 --jsonl $W/check-2.jsonl
fi
mkdir -p $OUT && tar cJf $OUT/logs.tar.xz -C $W .
