#!/bin/bash
# The long-context evaluation of bench/results/long-context-eval.md, on the CPU. Trains the three position
# variants of the `small` preset at 512 tokens (skipped when runs/<name> already holds a checkpoint),
# evaluates them out to 4,096 and 8,192, fine-tunes the rotary one for 2,048 tokens with YaRN, and runs the
# passkey and needle tables. Logs and JSON reports go to bench/results/logs/eval/.
#   npm run build && bash bench/long-context-eval.sh
set -euo pipefail
cd "$(dirname "$0")/.."
L=bench/results/logs/eval
mkdir -p "$L" runs
cli="nice node dist/src/cli/main.js"
common="--preset small --seq-len 512 --batch-size 4 --steps 200 --lr 2e-3 --warmup 20 --eval-every 0
  --checkpoint-every 1000 --final-eval-tokens 16384 --device cpu --seed 0 --overwrite --quiet"
train() { # name, model overrides
  [ -d "runs/$1/checkpoints" ] || $cli train $common --model "$2" --out "runs/$1" > "$L/train-$1.log" 2>&1
}
train alibi '{"alibiHeads":4,"rotary":null}'
train rotary '{"alibiHeads":0,"rotary":{"xpos":false}}'
train mixed '{}'

variants="--model alibi=runs/alibi --model rotary=runs/rotary --model mixed=runs/mixed"
$cli eval $variants --length 4096 --windows 24 --json --html "$L/extrapolation-4096.html" \
  > "$L/extrapolation-4096.json" 2> "$L/extrapolation-4096.log"
$cli eval $variants --length 8192 --windows 10 --json > "$L/extrapolation-8192.json" 2> "$L/extrapolation-8192.log"
for scaling in "--rotary-interpolation 4" "--rotary-ntk 4" "--rotary-dynamic-ntk 4" "--rotary-yarn 4"; do
  name=$(echo "$scaling" | sed 's/--rotary-//; s/ /-/')
  $cli eval --model rotary=runs/rotary $scaling --length 4096 --windows 24 --json \
    > "$L/rotary-$name.json" 2> "$L/rotary-$name.log"
done

[ -f runs/rotary-yarn4/model.safetensors ] ||
  nice node dist/bench/long-context-finetune.js runs/rotary runs/rotary-yarn4 --factor 4 --steps 400 \
    > "$L/finetune-rotary-yarn4.log" 2>&1
retrieval="--passkey 512,1024,2048 --needle 512,1024,2048 --depths 0,0.25,0.5,0.75,1 --trials 4"
$cli eval --model rotary-yarn4=runs/rotary-yarn4 --model rotary=runs/rotary --model alibi=runs/alibi \
  --length 2048 --windows 24 $retrieval --json --html "$L/retrieval-2048.html" \
  > "$L/retrieval-2048.json" 2> "$L/retrieval-2048.log"
