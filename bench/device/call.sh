#!/usr/bin/env bash
# One call on the GPU machine over builds packed by bench/device/pack.sh: `bash bench/device/call.sh CASE`, carrying
# .device. Each step runs under a time cap within BUDGET seconds (default 560, under the 10-minute call limit) and is
# skipped when too little is left; its log and a few summary lines (test totals, RESULT lines) go to the output.
# Everything comes back as one file, $OUT/logs.tar.xz (the device tool returns at most 8 files). Cases:
#   decode   GPU paged tests of `new`, then base vs new: the paged-attention bench and the decode bench alternated,
#            then the compiled Hugging Face anchor (bench/gpu-decode-anchor.py compile)
#   sweep    tests, bench/cuda/decode-splits.cu, `new` vs `new2` decode, the planner check (bench/gpu-plan.sh),
#            Nsight Compute over two replayed decode steps
#   prefetch bench/cuda/l2-prefetch.cu (for sm_90a, and as PTX for sm_80: line prefetches) and the decode kernel's
#            split sweep (stop 23: the prefetch lost and left the engine; kept to re-run the experiment)
#   shift    the GPU tests of `new5` (the norm + token shift in one launch), `new3` vs `new5` decode alternated,
#            then the compiled Hugging Face anchor and the planner's GPU check on `new5`
#   check    the planner's GPU check (bench/gpu-plan.sh) and the decode bench twice, on `new10` (main's native code)
#   profile  Nsight Compute over two replayed decode steps after 2,048 and 32,768 tokens on `new10`, summarised per
#            kernel, then the decode attention kernel's stall reasons and memory throughput after 32,768
#   overlap  the GPU tests of `new8`, then decode alternated over `new6` (stop 23), `new7` (+ decode steps launched
#            before the previous step's ids are read), `new8` (+ the few-row products as dependent launches that
#            prefetch their weights into L2: slower, reverted in a441fe7, so `new8` is not main) and
#            `new8 --no-overlap`; the compiled Hugging Face anchor; the planner check
#   combine  the GPU tests of `new9` (`new7` + the attention combine loading a round of partial rows with the
#            statistics), the paged-attention bench and the decode bench alternated over `new7` and `new9`, the
#            compiled Hugging Face anchor, the planner's GPU check on `new9`
#   copies   the GPU tests of `new10` (`new9` + the decode kernel's K/V copies laid out by whole rows, and the combine's
#            round sized to the splits), the paged-attention bench and the decode bench alternated over `new9` and
#            `new10`, the compiled Hugging Face anchor, the planner's GPU check on `new10`
#   adamw-grid  the GPU optimizer tests of `new12` (the many-tensor AdamW at two blocks a multiprocessor), the
#            optimizer bench and the 3B training step (1 × 2,048) alternated over `new11` (main before) and `new12`
#   optimizers  the optimizer bench over `new12` and two 8-bit grids (`new8bit2`, `new8bit4`: at most 2 or 4 blocks
#            a multiprocessor), the 3B step with float32 AdamW and with each 8-bit grid, then an events profile of
#            the 3B float32 step
#   embedding  the GPU nn/fused tests of `new13` (`new12` + the embedding gradient loading a run's rows 8 at a time),
#            the 3B step alternated over `new12` and `new13`, the 8-bit step on `new13`, an events profile
#   embedding-check  `new14` (`new13` with the CPU embedding gradient summing each id's rows in float32, as the CUDA
#            one does): the GPU nn, fused, 8-bit and training-repeatability tests
#   reductions  the GPU nn/fused tests of `new15` (`new14` + the embedding gradient's runs spread over column slices),
#            then an events profile of the 3B step on `new14`, `new15` and `new15s2`/`new15s4` (+ the gradient norm's
#            sum of squares at 2 or 4 blocks a multiprocessor instead of 8)
#   kernels  `new16` (main at stop 26's start), `new17` (+ the Hopper backward's dQ conversion taking dQ' through the
#            rotary transform), `new18` (+ one rotary table a call, the backward's float32 accumulators under one
#            memset), `new19` (+ addNormGrad's next row staged by cp.async, headNormGrad's next row loaded ahead),
#            `new20` (+ the Hopper attention kernels' CTAs longest tiles first over sections of heads): the GPU fused,
#            8-bit and attention tests on `new20`, the fused-kernel bench on `new18` and `new19`, the 3B step
#            alternated over `new16`, `new19`, `new20`, Nsight Compute's time of every kernel in one andromeda-3b
#            attention forward + backward on `new16` and `new20` (bench/ncu-kernel-summary.py), then an events
#            profile of the 3B step on `new20`
#   final    (not run: no device time was left at stop 26) `new21` (`new20` less headNormGrad's next-row loads,
#            + 32-bit index arithmetic in the q pre-pass and the dQ rotary conversion, commit 91c91a7): its GPU fused
#            and attention tests, Nsight Compute over one attention forward + backward, the 3B step on `new16` and
#            `new21`
#   eightbit `new23` (main at stop 27's start + 91c91a7's 32-bit index arithmetic + the 8-bit kernel's branch-free
#            search and per-block inverse + clipping read on the device by the AdamW kernels): its GPU 8-bit, clip,
#            fused and Hopper attention tests, the optimizer bench on `new21` (= main + 91c91a7) and `new23`, the
#            8-bit 3B step alternated over both, the float32 3B step on `new20`, `new23` and `new23` clipping on the
#            host, Nsight Compute over one attention forward + backward on `new23`
#   records  `new24` (`new23` + the 8-bit kernel's codes from threshold records, one shared-memory load a moment;
#            tables going up from pinned staging memory, so that a step clipping on the device does not wait for the
#            norm): its GPU 8-bit, clip, fused, graph and repeatability tests, the optimizer bench, the 8-bit 3B step
#            alternated over `new23` and `new24`, the float32 step clipping on the device and on the host, the
#            FlexAttention anchor (../shared/anchors/anchor_flex.py carried unchanged in .device/anchors), an events
#            profile of the 8-bit step
#   occupancy  `new25` (`new24` with the 8-bit kernel at three blocks a multiprocessor: 80 registers, no spills):
#            its GPU 8-bit and clip tests, the optimizer bench and the 8-bit 3B step alternated over `new24` and
#            `new25`, the float32 step on `new25`
#   final27  (not run: no device time was left at stop 27) `new26` (main at stop 27's end: `new24`'s kernels with the records in threshold_records.h, as `new25`
#            less its three blocks a multiprocessor): its GPU 8-bit and clip tests, the 8-bit 3B step three times,
#            the float32 step, the FlexAttention anchor
#   bars     issue 14's and 18's figures on `new10`: its decode bench twice, the compiled Hugging Face anchor, then the
#            planner's GPU check (bench/gpu-plan.sh) — name an H100 for the bars
# The bench/cuda programs travel built, in .device/bins.tar.xz: nvcc -O3 -std=c++17 -arch=sm_90a -I native
# bench/cuda/NAME.cu -o /tmp/bins/NAME for each, then tar cJf .device/bins.tar.xz -C /tmp/bins .
set -uo pipefail
W=/tmp/w; mkdir -p $W
T0=$(date +%s); BUDGET=${BUDGET:-560}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
tar xJf .device/node.tar.xz -C /opt && export PATH=/opt/node/bin:$PATH
tar xJf .device/node_modules.tar.xz
mkdir -p $W/bin; [[ -f .device/bins.tar.xz ]] && tar xJf .device/bins.tar.xz -C $W/bin  # bench/cuda builds
use() {  # a packed build's dist and addons
  rm -rf dist build/Release; mkdir -p build/Release; tar xJf .device/$1/dist.tar.xz
  xz -dc .device/$1/andromeda_cpu.node.xz > build/Release/andromeda_cpu.node
  xz -dc .device/$1/andromeda_cuda.node.xz > build/Release/andromeda_cuda.node; echo "== using pack $1"; }
addon() {  # only a packed build's addons (the same dist on both)
  mkdir -p build/Release; xz -dc .device/$1/andromeda_cpu.node.xz > build/Release/andromeda_cpu.node
  xz -dc .device/$1/andromeda_cuda.node.xz > build/Release/andromeda_cuda.node; echo "== addon $1"; }
step() {  # step NAME SECONDS COMMAND...
  local name=$1 lim=$2; shift 2; local l; l=$(left)
  (( l < 20 )) && { echo "SKIP $name (budget)"; return; }
  (( lim > l - 10 )) && lim=$(( l - 10 )); local t; t=$(date +%s)
  timeout $lim "$@" > $W/$name.log 2>&1; local rc=$?
  echo "== $name rc=$rc t=$(( $(date +%s) - t ))s"
  grep -E "^(ℹ|#) (tests|pass|fail|skipped)|^not ok|RESULT|✖" $W/$name.log | head -30 | cut -c1-300; }
compare_builds() {  # compare_builds BASE NEW [more GPU tests]: NEW's GPU tests (the paged ones and those named),
  # the paged-attention bench and the decode bench alternated over BASE and NEW, the compiled Hugging Face anchor and
  # the planner's GPU check on NEW
  local base=$1 new=$2; shift 2
  use $new
  step test-gpu 180 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/paged-attention.test.js \
    dist/tests/gpu/paged-forward.test.js dist/tests/gpu/graph.test.js dist/tests/gpu/speculative-graphs.test.js "$@"
  for tag in $base $new; do addon $tag; step paged-$tag 70 node dist/bench/gpu-paged-attention.js; done
  for r in 1 2; do for tag in $base $new; do use $tag; step decode-$tag-$r 60 node dist/bench/gpu-decode.js; done; done
  use $new
  step anchor-compile 280 python3 bench/gpu-decode-anchor.py compile
  step plan 150 bash bench/gpu-plan.sh $W/plan
  cat $W/plan/table.md 2>/dev/null; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee $W/env.txt
case ${1:?usage: call.sh CASE} in
  decode)
    use new
    step test-paged 200 env ANDROMEDA_REQUIRE_GPU=1 node --test dist/tests/gpu/paged-attention.test.js
    step test-forward 150 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/paged-forward.test.js \
      dist/tests/gpu/graph.test.js dist/tests/gpu/speculative-graphs.test.js
    for tag in base new; do addon $tag; step paged-$tag 70 node dist/bench/gpu-paged-attention.js; done
    for r in 1 2; do for tag in base new; do addon $tag; step decode-$tag-$r 90 node dist/bench/gpu-decode.js; done; done
    addon new
    step anchor-compile 280 python3 bench/gpu-decode-anchor.py compile
    ;;
  sweep)
    use new2
    step test-gpu 120 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/paged-forward.test.js \
      dist/tests/gpu/graph.test.js dist/tests/gpu/speculative-graphs.test.js dist/tests/gpu/paged-attention.test.js
    for r in 1 2; do
      for tag in new new2; do use $tag; step decode-$tag-$r 45 node dist/bench/gpu-decode.js; done
      (( $(left) < 300 )) && break
    done
    use new2
    step plan 45 bash bench/gpu-plan.sh $W/plan
    cat $W/plan/table.md 2>/dev/null
    step decode-splits 150 $W/bin/decode-splits
    grep -E "rule|best|PASS|FAIL" $W/decode-splits.log | head -60
    step ncu-2k 100 ncu --csv --profile-from-start off --cache-control none --graph-profiling node \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum node dist/bench/gpu-decode.js single:2048 --profile-at 64
    python3 bench/ncu-step-summary.py $W/ncu-2k.log > $W/ncu-2k.summary.txt 2>&1
    head -22 $W/ncu-2k.summary.txt; xz -T4 $W/ncu-2k.log 2>/dev/null
    ;;
  prefetch)
    for bin in l2-prefetch l2-prefetch-lines; do step $bin 40 $W/bin/$bin; grep -E "^\|" $W/$bin.log; done
    step decode-splits 120 $W/bin/decode-splits
    grep -E "rule|best|PASS|FAIL" $W/decode-splits.log | head -40
    ;;
  shift)
    use new5
    step test-gpu 150 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/add-norm-shift.test.js \
      dist/tests/gpu/head-norm.test.js dist/tests/gpu/paged-forward.test.js dist/tests/gpu/graph.test.js \
      dist/tests/gpu/speculative-graphs.test.js dist/tests/gpu/paged-attention.test.js
    for r in 1 2; do for tag in new3 new5; do use $tag; step decode-$tag-$r 60 node dist/bench/gpu-decode.js; done; done
    use new5
    step anchor-compile 280 python3 bench/gpu-decode-anchor.py compile
    step plan 150 bash bench/gpu-plan.sh $W/plan
    cat $W/plan/table.md 2>/dev/null
    ;;
  check)
    use new10
    step plan 150 bash bench/gpu-plan.sh $W/plan
    cat $W/plan/table.md 2>/dev/null
    for r in 1 2; do step decode-new10-$r 60 node dist/bench/gpu-decode.js; done
    ;;
  profile)
    use new10
    for ctx in 2048 32768; do
      step ncu-$ctx 150 ncu --csv --profile-from-start off --cache-control none --graph-profiling node \
        --metrics gpu__time_duration.sum,dram__bytes_read.sum node dist/bench/gpu-decode.js single:$ctx --profile-at 64
      python3 bench/ncu-step-summary.py $W/ncu-$ctx.log > $W/ncu-$ctx.summary.txt 2>&1
      head -24 $W/ncu-$ctx.summary.txt; xz -T4 $W/ncu-$ctx.log 2>/dev/null
    done
    step ncu-decode-kernel-32k 150 ncu --profile-from-start off --graph-profiling node -k regex:paged_decode -c 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats \
      --section Occupancy --section LaunchStats node dist/bench/gpu-decode.js single:32768 --profile-at 64
    grep -E "Duration|Throughput|Stall|Warp Cycles|Issued|Eligible|Active Warps|Bandwidth|Hit Rate" \
      $W/ncu-decode-kernel-32k.log | head -60
    ;;
  overlap)
    use new8
    step test-gpu 180 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/download-later.test.js \
      dist/tests/gpu/dependent-launch.test.js dist/tests/gpu/matmul.test.js dist/tests/gpu/fused.test.js dist/tests/gpu/graph.test.js \
      dist/tests/gpu/paged-forward.test.js dist/tests/gpu/speculative-graphs.test.js dist/tests/gpu/add-norm-shift.test.js
    for r in 1 2; do
      for tag in new6 new7 new8; do use $tag; step decode-$tag-$r 60 node dist/bench/gpu-decode.js; done
      step decode-new8-no-overlap-$r 60 node dist/bench/gpu-decode.js --no-overlap
    done
    step anchor-compile 280 python3 bench/gpu-decode-anchor.py compile
    step plan 150 bash bench/gpu-plan.sh $W/plan
    cat $W/plan/table.md 2>/dev/null
    ;;
  combine) compare_builds new7 new9 dist/tests/gpu/download-later.test.js dist/tests/gpu/add-norm-shift.test.js ;;
  copies) compare_builds new9 new10 ;;
  bars)
    use new10
    for r in 1 2; do step decode-new10-$r 60 node dist/bench/gpu-decode.js; done
    step anchor-compile 280 python3 bench/gpu-decode-anchor.py compile
    step plan 150 bash bench/gpu-plan.sh $W/plan
    cat $W/plan/table.md 2>/dev/null
    ;;
  adamw-grid)
    use new12
    step test-gpu 150 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/fused.test.js \
      dist/tests/gpu/adamw8bit.test.js
    for tag in new11 new12; do addon $tag; step adamw-$tag 60 node dist/bench/gpu-adamw8bit.js; grep "| AdamW" $W/adamw-$tag.log; done
    for r in 1 2; do for tag in new11 new12; do
      addon $tag; step train-$tag-$r 90 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12; grep "^| andromeda" $W/train-$tag-$r.log
    done; done
    ;;
  optimizers)
    use new12
    for tag in new12 new8bit2 new8bit4; do addon $tag; step adamw-$tag 60 node dist/bench/gpu-adamw8bit.js; grep "| AdamW" $W/adamw-$tag.log; done
    addon new12; step train-new12-fp32 90 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12
    grep "^| andromeda" $W/train-new12-fp32.log
    for tag in new12 new8bit2 new8bit4; do
      addon $tag; step train-$tag-8bit 90 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12 --optimizer adamw8bit
      grep "^| andromeda" $W/train-$tag-8bit.log
    done
    addon new12
    step profile-3b 120 env ANDROMEDA_CUDA_PROFILE=events ANDROMEDA_CUDA_PROFILE_ROWS=70 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 6
    tail -75 $W/profile-3b.log | cut -c1-220
    ;;
  embedding)
    use new13
    step test-gpu 150 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/nn.test.js dist/tests/gpu/fused.test.js
    for r in 1 2; do for tag in new12 new13; do
      addon $tag; step train-$tag-$r 90 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12; grep "^| andromeda" $W/train-$tag-$r.log
    done; done
    addon new13; step train-new13-8bit 90 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12 --optimizer adamw8bit
    grep "^| andromeda" $W/train-new13-8bit.log
    step profile-3b 120 env ANDROMEDA_CUDA_PROFILE=events ANDROMEDA_CUDA_PROFILE_ROWS=30 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 6
    grep -E "idle|embeddingGrad|adamwMany|sumOfSquares" $W/profile-3b.log | cut -c1-160
    ;;
  embedding-check)
    use new14
    step test-gpu 200 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/nn.test.js \
      dist/tests/gpu/fused.test.js dist/tests/gpu/adamw8bit.test.js dist/tests/gpu/train-repeatability.test.js
    ;;
  reductions)
    use new15
    step test-gpu 150 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/nn.test.js dist/tests/gpu/fused.test.js
    for tag in new14 new15 new15s2 new15s4; do
      addon $tag
      step profile-$tag 60 env ANDROMEDA_CUDA_PROFILE=events ANDROMEDA_CUDA_PROFILE_ROWS=60 node dist/bench/gpu-train-step.js \
        andromeda-3b 1 2048 6
      grep -E "idle|embeddingGrad|sumOfSquaresMany|^\| andromeda" $W/profile-$tag.log | cut -c1-160
    done
    ;;
  kernels)
    use new20
    step test-gpu 200 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/fused.test.js \
      dist/tests/gpu/adamw8bit.test.js dist/tests/gpu/attention-hopper-backward.test.js dist/tests/gpu/attention-hopper.test.js \
      dist/tests/gpu/attention.test.js
    for tag in new18 new19; do addon $tag; step fused-$tag 35 node dist/bench/gpu-fused-kernels.js; grep -i "norm" $W/fused-$tag.log | head -5; done
    for r in 1 2; do for tag in new16 new19 new20; do
      addon $tag; step train-$tag-$r 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 9
      grep -E "^\| andromeda" $W/train-$tag-$r.log
    done; done
    for tag in new16 new20; do
      addon $tag; step ncu-attention-$tag 40 ncu --clock-control none --cache-control none --csv --metrics gpu__time_duration.sum \
        node dist/bench/gpu-attention-hopper-backward.js 2048 --once andromeda --kernel hopper
      python3 bench/ncu-kernel-summary.py $W/ncu-attention-$tag.log | tee $W/ncu-attention-$tag.summary.txt | head -22
    done
    step profile-new20 45 env ANDROMEDA_CUDA_PROFILE=events ANDROMEDA_CUDA_PROFILE_ROWS=60 node dist/bench/gpu-train-step.js \
      andromeda-3b 1 2048 6
    grep -E "idle|^\| andromeda|addNorm|attention" $W/profile-new20.log | cut -c1-200
    ;;
  final)
    use new21
    step test-gpu 170 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/fused.test.js \
      dist/tests/gpu/attention-hopper-backward.test.js dist/tests/gpu/attention-hopper.test.js dist/tests/gpu/attention.test.js
    step ncu-attention-new21 40 ncu --clock-control none --cache-control none --csv --metrics gpu__time_duration.sum \
      node dist/bench/gpu-attention-hopper-backward.js 2048 --once andromeda --kernel hopper
    python3 bench/ncu-kernel-summary.py $W/ncu-attention-new21.log | tee $W/ncu-attention-new21.summary.txt | head -16
    for r in 1; do for tag in new16 new21; do
      addon $tag; step train-$tag-$r 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12
      grep -E "^\| andromeda" $W/train-$tag-$r.log
    done; done
    ;;
  eightbit)
    use new23
    step test-gpu 150 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/adamw8bit.test.js \
      dist/tests/gpu/clip-and-step.test.js dist/tests/gpu/fused.test.js dist/tests/gpu/attention-hopper-backward.test.js \
      dist/tests/gpu/attention-hopper.test.js
    for tag in new21 new23; do use $tag; step adamw-$tag 40 node dist/bench/gpu-adamw8bit.js; grep -E "ms" $W/adamw-$tag.log | head -6; done
    for r in 1 2; do for tag in new21 new23; do
      use $tag; step train8-$tag-$r 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 9 --optimizer adamw8bit
      grep -E "^\| andromeda" $W/train8-$tag-$r.log
    done; done
    use new20; step train-new20 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 9; grep -E "^\| andromeda" $W/train-new20.log
    use new23; step train-new23 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 9; grep -E "^\| andromeda" $W/train-new23.log
    step train-new23-hostclip 40 env ANDROMEDA_BENCH_CLIP=host node dist/bench/gpu-train-step.js andromeda-3b 1 2048 9
    grep -E "^\| andromeda" $W/train-new23-hostclip.log
    step ncu-attention-new23 40 ncu --clock-control none --cache-control none --csv --metrics gpu__time_duration.sum \
      node dist/bench/gpu-attention-hopper-backward.js 2048 --once andromeda --kernel hopper
    python3 bench/ncu-kernel-summary.py $W/ncu-attention-new23.log | tee $W/ncu-attention-new23.summary.txt | head -16
    ;;
  records)
    use new24
    step test-gpu 100 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/adamw8bit.test.js \
      dist/tests/gpu/clip-and-step.test.js dist/tests/gpu/fused.test.js dist/tests/gpu/graph.test.js \
      dist/tests/gpu/train-repeatability.test.js
    step adamw-new24 40 node dist/bench/gpu-adamw8bit.js; grep -E "\| AdamW" $W/adamw-new24.log
    for r in 1 2; do for tag in new23 new24; do
      use $tag; step train8-$tag-$r 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12 --optimizer adamw8bit
      grep -E "^\| andromeda" $W/train8-$tag-$r.log
    done; done
    use new24
    for r in 1 2; do
      step train-new24-$r 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12; grep -E "^\| andromeda" $W/train-new24-$r.log
      step train-new24-hostclip-$r 40 env ANDROMEDA_BENCH_CLIP=host node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12
      grep -E "^\| andromeda" $W/train-new24-hostclip-$r.log
    done
    step flex 150 python3 .device/anchors/anchor_flex.py train:flex:2048x1 train:sdpa:2048x1; grep RESULT $W/flex.log
    step profile8-new24 45 env ANDROMEDA_CUDA_PROFILE=events ANDROMEDA_CUDA_PROFILE_ROWS=30 node dist/bench/gpu-train-step.js \
      andromeda-3b 1 2048 6 --optimizer adamw8bit
    grep -E "idle|^\| andromeda|adamw|sumOfSquares" $W/profile8-new24.log | cut -c1-160 | head -20
    ;;
  occupancy)
    use new25
    step test-gpu 60 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/adamw8bit.test.js \
      dist/tests/gpu/clip-and-step.test.js
    for tag in new24 new25; do use $tag; step adamw-$tag 40 node dist/bench/gpu-adamw8bit.js; grep -E "\| AdamW" $W/adamw-$tag.log; done
    for r in 1 2; do for tag in new24 new25; do
      use $tag; step train8-$tag-$r 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12 --optimizer adamw8bit
      grep -E "^\| andromeda" $W/train8-$tag-$r.log
    done; done
    use new25; step train-new25 40 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12; grep -E "^\| andromeda" $W/train-new25.log
    ;;
  final27)
    use new26
    step test-gpu 60 env ANDROMEDA_REQUIRE_GPU=1 node --test --test-concurrency=1 dist/tests/gpu/adamw8bit.test.js \
      dist/tests/gpu/clip-and-step.test.js
    for r in 1 2 3; do
      step train8-new26-$r 30 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12 --optimizer adamw8bit
      grep -E "^\| andromeda" $W/train8-new26-$r.log
    done
    step train-new26 30 node dist/bench/gpu-train-step.js andromeda-3b 1 2048 12; grep -E "^\| andromeda" $W/train-new26.log
    step flex 100 python3 .device/anchors/anchor_flex.py train:flex:2048x1; grep RESULT $W/flex.log
    ;;
  *) echo "call.sh: unknown case $1"; exit 2;;
esac
tar cJf $OUT/logs.tar.xz -C $W .
echo "== total $(( $(date +%s) - T0 ))s"
