#!/usr/bin/env bash
# Trains the target and the draft model of the speculative-decoding measurements (bench/speculative-engine.ts,
# bench/speculative-generate.ts) with the project's trainer (`andromeda train`), on the same data and tokenizer,
# with the same seed (so the same data order), so the draft predicts the target well.
#
# How: both are the Andromeda architecture of the `orca` preset (DeepNorm, MQA, ALiBi + rotary xPos, token shift),
# trained with the default recipe (AdamW, warmup then cosine) on the same tokens (DATA, a folder from
# `andromeda tokenize`; without it the embedded default corpus, byte tokenizer), each for a bounded time
# (--max-minutes plans the schedule from the speed of the first steps). Two sizes, chosen by DEVICE:
#
#   DEVICE=cuda (default auto)
#     target  depth 16, dim 1024, 16 heads  (171M parameters; TARGET_MINUTES of training, default 6)
#     draft   depth 2,  dim 256,  4 heads   (1.5M parameters;  DRAFT_MINUTES of training, default 2)
#   DEVICE=cpu
#     target  depth 8, dim 512, 8 heads     (21.8M parameters, 87 MB of float32 weights: far beyond the L2/L3
#                                            caches, so batch-1 decoding streams every weight once per token and
#                                            verifying k + 1 tokens costs little more than one;
#                                            TARGET_MINUTES, default 12)
#     draft   depth 2, dim 192, 4 heads     (0.88M parameters, 3.5 MB: cache-resident; DRAFT_MINUTES, default 3)
#     sequences of 256 tokens, batches of 8, so that two cores reach a few hundred steps in that time.
#     On a shared machine the target may stop short of the steps its schedule planned from its first steps;
#     a second session continues the same schedule for another TARGET_MINUTES:
#       node dist/src/cli/main.js train --out runs/speculative-cpu/target --resume --quiet
#     (bench/results/speculative.md's target: two 12-minute sessions, 169 of 271 planned steps.)
#
# Batch-1 decoding of models this size costs roughly per layer and per weight byte, so the draft runs at a
# small fraction of the target's cost per token: the ratio that makes speculation pay.
#
#   npm run build && bash bench/train-draft-target.sh                       # on the GPU machine
#   npm run build && DEVICE=cpu bash bench/train-draft-target.sh            # on the CPU (about 15 minutes)
#   node dist/bench/speculative-engine.js runs/speculative/target runs/speculative/draft 2,4 1,8,32 256 cuda
#   node dist/bench/speculative-engine.js runs/speculative-cpu/target runs/speculative-cpu/draft 2,3,4 1,4 128 cpu
set -euo pipefail
DEVICE=${DEVICE:-auto}
SEED=${SEED:-0}
data_flags=(--tokenizer byte)
[[ -n ${DATA:-} ]] && data_flags=(--data "$DATA")

if [[ $DEVICE == cpu ]]; then
  OUT=${OUT:-runs/speculative-cpu}
  target_model='{"depth": 8, "dim": 512, "heads": 8, "headDim": 64, "maxSeqLen": 4096}'
  draft_model='{"depth": 2, "dim": 192, "heads": 4, "headDim": 48, "alibiHeads": 2, "maxSeqLen": 4096}'
  shape_flags=(--seq-len 256 --batch-size 8 --warmup 20 --eval-every 0 --final-eval-tokens 65536)
  target_minutes=${TARGET_MINUTES:-12}
  draft_minutes=${DRAFT_MINUTES:-3}
  target_lr=1e-3
  draft_lr=2e-3
else
  OUT=${OUT:-runs/speculative}
  target_model='{"depth": 16, "dim": 1024, "heads": 16, "headDim": 64, "maxSeqLen": 4096}'
  draft_model='{"depth": 2, "dim": 256, "heads": 4, "headDim": 64, "maxSeqLen": 4096}'
  shape_flags=(--seq-len 512 --batch-size 16 --warmup 200 --eval-every 500)
  target_minutes=${TARGET_MINUTES:-6}
  draft_minutes=${DRAFT_MINUTES:-2}
  target_lr=1e-3
  draft_lr=1e-3
fi

train() {  # name, minutes, model overrides (JSON), learning rate
  node dist/src/cli/main.js train "${data_flags[@]}" --preset orca --model "$3" "${shape_flags[@]}" \
    --lr "$4" --steps 100000 --max-minutes "$2" --checkpoint-every 1000 \
    --device "$DEVICE" --seed "$SEED" --quiet --out "$OUT/$1" --overwrite
}

train target "$target_minutes" "$target_model" "$target_lr"
train draft "$draft_minutes" "$draft_model" "$draft_lr"
echo "trained: $OUT/target and $OUT/draft (metrics.jsonl in each: held-out loss of both)"
