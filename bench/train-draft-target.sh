#!/usr/bin/env bash
# Trains the target and the draft model of the speculative-decoding measurement (bench/gpu-speculative.ts) with
# the project's trainer (`andromeda train`), on the same data and tokenizer, so the draft predicts the target well.
#
# How: both are the Andromeda architecture of the `orca` preset (DeepNorm, MQA, ALiBi + rotary xPos, token shift),
# trained with the default recipe on the same tokens (DATA, a folder from `andromeda tokenize`; without it the
# embedded default corpus, byte tokenizer):
#   target  depth 16, dim 1024, 16 heads  (171M parameters; TARGET_MINUTES of training, default 6)
#   draft   depth 2,  dim 256,  4 heads   (1.5M parameters;  DRAFT_MINUTES of training, default 2)
# Batch-1 decoding of models this size costs roughly per layer, so the draft runs at about a tenth of the
# target's cost per token: the ratio that makes speculation pay.
#
#   npm run build && bash bench/train-draft-target.sh            # on the GPU machine, from the repository root
#   node dist/bench/gpu-speculative.js runs/speculative/target runs/speculative/draft
set -euo pipefail
OUT=${OUT:-runs/speculative}
DEVICE=${DEVICE:-auto}
SEED=${SEED:-0}
data_flags=(--tokenizer byte)
[[ -n ${DATA:-} ]] && data_flags=(--data "$DATA")

train() {  # name, minutes, model overrides (JSON)
  node dist/src/cli/main.js train "${data_flags[@]}" --preset orca --model "$3" \
    --seq-len 512 --batch-size 16 --lr 1e-3 --warmup 200 --steps 100000 --max-minutes "$2" \
    --eval-every 500 --checkpoint-every 1000 --device "$DEVICE" --seed "$SEED" --quiet --out "$OUT/$1" --overwrite
}

train target "${TARGET_MINUTES:-6}" '{"depth": 16, "dim": 1024, "heads": 16, "headDim": 64, "maxSeqLen": 4096}'
train draft "${DRAFT_MINUTES:-2}" '{"depth": 2, "dim": 256, "heads": 4, "headDim": 64, "maxSeqLen": 4096}'
echo "trained: $OUT/target and $OUT/draft (metrics.jsonl in each: held-out loss of both)"
