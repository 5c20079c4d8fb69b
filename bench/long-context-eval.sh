#!/bin/bash
# The long-context evaluation of bench/results/long-context-eval.md. Trains the position variants of the
# `small` preset at 512 tokens (a run is skipped when runs/<name> already holds a checkpoint), evaluates
# them out to 4,096 and 8,192, evaluates rotary scalings zero-shot, fine-tunes a rotary model for 2,048
# tokens with YaRN and runs the passkey and needle tables. Logs, JSON reports and HTML pages go to
# bench/results/logs/eval/.
#   npm run build && bash bench/long-context-eval.sh            (DEVICE=cuda STEPS=5000 ... on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cpu}
BATCH=${BATCH:-4}
STEPS=${STEPS:-200}                 # the preset variants
NOSHIFT_STEPS=${NOSHIFT_STEPS:-300} # the variants without token shift
FINETUNE_STEPS=${FINETUNE_STEPS:-400}
L=bench/results/logs/eval
mkdir -p "$L" runs
cli="nice node dist/src/cli/main.js"
train() { # name, steps, model overrides
  [ -d "runs/$1/checkpoints" ] && return
  $cli train --preset small --seq-len 512 --batch-size "$BATCH" --steps "$2" --lr 2e-3 --warmup $(($2 / 10)) \
    --eval-every 0 --checkpoint-every 100000 --final-eval-tokens 16384 --device "$DEVICE" --seed 0 --quiet \
    --model "$3" --out "runs/$1" > "$L/train-$1.log" 2>&1
}
evaluate() { # output name, arguments
  local name=$1
  shift
  $cli eval --device "$DEVICE" "$@" --json > "$L/$name.json" 2> "$L/$name.log"
}

# (a) ALiBi on every head, (b) rotary only, (c) the preset's mixed ALiBi + xPos; then without token shift.
train alibi "$STEPS" '{"alibiHeads":4,"rotary":null}'
train rotary "$STEPS" '{"alibiHeads":0,"rotary":{"xpos":false}}'
train mixed "$STEPS" '{}'
train rotary-full "$STEPS" '{"alibiHeads":0,"rotary":{"dim":64,"xpos":false}}'
train alibi-noshift "$NOSHIFT_STEPS" '{"alibiHeads":4,"shiftTokens":0,"rotary":null}'
train rotary-full-noshift "$NOSHIFT_STEPS" '{"alibiHeads":0,"shiftTokens":0,"rotary":{"dim":64,"xpos":false}}'
train mixed-noshift "$NOSHIFT_STEPS" '{"shiftTokens":0,"rotary":{"dim":64,"xpos":true}}'
if [ ! -d runs/rotary-600 ]; then
  cp -r runs/rotary runs/rotary-600
  $cli train --out runs/rotary-600 --resume --steps $((3 * STEPS)) --quiet > "$L/train-rotary-600.log" 2>&1
fi

variants="--model alibi=runs/alibi --model rotary=runs/rotary --model mixed=runs/mixed"
evaluate extrapolation-4096 $variants --length 4096 --windows 24 --html "$L/extrapolation-4096.html"
evaluate extrapolation-8192 $variants --length 8192 --windows 10
evaluate extrapolation-8192-more --model rotary-600=runs/rotary-600 --model rotary-full=runs/rotary-full \
  --length 8192 --windows 10
noshift="--model alibi-noshift=runs/alibi-noshift --model rotary-full-noshift=runs/rotary-full-noshift"
evaluate extrapolation-4096-noshift $noshift --length 4096 --windows 24 --html "$L/extrapolation-4096-noshift.html"
evaluate extrapolation-8192-noshift $noshift --length 8192 --windows 10
evaluate extrapolation-4096-mixed-noshift --model mixed-noshift=runs/mixed-noshift --length 4096 --windows 24
evaluate extrapolation-8192-mixed-noshift --model mixed-noshift=runs/mixed-noshift --length 8192 --windows 10
for scaling in interpolation ntk dynamic-ntk yarn; do
  evaluate "rotary-$scaling-4" --model rotary=runs/rotary "--rotary-$scaling" 4 --length 4096 --windows 24
  evaluate "rotary-full-noshift-$scaling-8" --model rotary-full-noshift=runs/rotary-full-noshift \
    "--rotary-$scaling" 8 --length 4096 --windows 24
done

# Long-context fine-tunes of (b) (YaRN ×4 from 512, rows of 2,048) and the retrieval tables at up to 2,048:
# the models learn the answer's form, not the retrieval.
finetune() { # base, out, extra arguments
  [ -d "runs/$2/checkpoints" ] && return
  local base=$1 out=$2
  shift 2
  ANDROMEDA_THREADS=${ANDROMEDA_THREADS:-1} nice node dist/bench/long-context-finetune.js "runs/$base" "runs/$out" \
    --device "$DEVICE" "$@" > "$L/finetune-$out.log" 2>&1
}
finetune rotary rotary-yarn4 --factor 4 --steps "$FINETUNE_STEPS"
finetune rotary-600 rotary600-yarn4 --factor 4 --steps $((3 * FINETUNE_STEPS / 2)) --lr 1e-3 --passkey-share 0.7
retrieval="--passkey 512,1024,2048 --needle 512,1024,2048 --depths 0,0.25,0.5,0.75,1 --trials 4"
evaluate retrieval-2048 --model rotary-yarn4=runs/rotary-yarn4 --model rotary=runs/rotary --model alibi=runs/alibi \
  --length 2048 --windows 24 $retrieval --html "$L/retrieval-2048.html"
evaluate retrieval-2048-rotary600 --model rotary600-yarn4=runs/rotary600-yarn4 --model rotary-600=runs/rotary-600 \
  --length 2048 --windows 24 --bucket 512 $retrieval --html "$L/retrieval-2048-rotary600.html"

# Passkey retrieval that works: stage 1 learns it at 512 from scratch (mostly passkey rows), stage 2 carries it to
# 2,048 with YaRN ×4 and a short fine-tune; tables before the fine-tune (plain and with YaRN zero-shot) and after.
scratch() { # out, arguments
  [ -d "runs/$1/checkpoints" ] && return
  local out=$1
  shift
  ANDROMEDA_THREADS=${ANDROMEDA_THREADS:-1} nice node dist/bench/long-context-finetune.js --from-scratch "runs/$out" \
    --device "$DEVICE" "$@" > "$L/train-$out.log" 2>&1
}
passkey_mix="--batch-size 4 --passkey-share 0.8 --min-length 256 --monitor-every 100"
scratch passkey-512 --seq-len 512 --steps 2000 --lr 2e-3 $passkey_mix
finetune passkey-512 passkey-yarn4 --factor 4 --steps 400 --lr 1e-3 $passkey_mix
finetune passkey-yarn4 passkey-yarn4-focus --factor 1 --steps 400 --lr 7e-4 --seed 3 $passkey_mix --passkey-share 1
passkey="--length 0 --passkey 512,1024,2048 --needle 512,1024,2048 --depths 0,0.25,0.5,0.75,1 --trials 4"
evaluate retrieval-passkey-512 --model passkey-512=runs/passkey-512 $passkey
evaluate retrieval-passkey-512-yarn4-zeroshot --model passkey-512=runs/passkey-512 --rotary-yarn 4 $passkey
evaluate retrieval-passkey-yarn4 --model passkey-yarn4=runs/passkey-yarn4 $passkey
evaluate retrieval-passkey-yarn4-focus --model passkey-yarn4-focus=runs/passkey-yarn4-focus $passkey
