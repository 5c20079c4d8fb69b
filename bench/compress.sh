#!/usr/bin/env bash
# Bits per byte of `andromeda compress` beside gzip -9, xz -9 and zstd --ultra -22.
#   offline: a tiny byte-level model trained with the CPU quickstart's recipe (the bundled corpus's
#            train split; TRAIN_MINUTES, default 12, instead of the quickstart's 7) codes the
#            corpus's held-out split, with a 128-token context (the training length) kept ≥ 96;
#   online:  `--online` with its defaults: a fresh tiny model that trains as it codes (4 streams,
#            a 64-token context rebuilt from its last 32, an AdamW step each time it fills, lr
#            1.25e-3 decaying as 1/(1 + step/3000)), its probabilities mixed into the context-mixing
#            predictor, on Moby-Dick's train split (1.1 MB); then the same model alone (--mix off,
#            compress only) and the mixer alone (bench/compress-mixer-alone.ts, the model's input
#            held at 1/2) to show what each contributes. The load average is logged before each
#            step (the machine is shared). One thread (ANDROMEDA_THREADS, default 1).
# Every andromeda file is decompressed and compared with the original byte for byte.
# Usage: bench/compress.sh [offline|online|all] (default all). Logs: bench/results/logs/compress/.
set -euo pipefail
cd "$(dirname "$0")/.."
part=${1:-all}
logs=bench/results/logs/compress
work=${COMPRESS_BENCH_DIR:-runs/compress-bench}
mkdir -p "$logs" "$work"
andromeda() { node dist/src/cli/main.js "$@"; }

# The "text" field of every document of the given JSONL files, one after another.
jsonl_text() { node -e '
  const fs = require("fs");
  for (const f of process.argv.slice(1))
    for (const line of fs.readFileSync(f, "utf8").split("\n"))
      if (line.trim()) process.stdout.write(JSON.parse(line).text);' "$@"; }

bpb() { node -e 'const [c, o] = process.argv.slice(1).map(Number); console.log((8 * c / o).toFixed(4))' "$1" "$2"; }
size() { wc -c <"$1" | tr -d ' '; }

# Prints "tool bits-per-byte" lines for the classic compressors on $1 (a missing tool is skipped, saying so).
classic() {
  local file=$1 n
  n=$(size "$file")
  if command -v gzip >/dev/null; then echo "gzip -9: $(bpb "$(gzip -9 -c "$file" | wc -c)" "$n") bpb"; else echo "gzip: not installed, skipped"; fi
  if command -v xz >/dev/null; then echo "xz -9: $(bpb "$(xz -9 -c "$file" | wc -c)" "$n") bpb"; else echo "xz: not installed, skipped"; fi
  if command -v zstd >/dev/null; then echo "zstd --ultra -22: $(bpb "$(zstd -q --ultra -22 -c "$file" | wc -c)" "$n") bpb"; else echo "zstd: not installed, skipped"; fi
}

# Compresses $1 with the andromeda flags that follow, decompresses, and checks the round trip.
andromeda_round_trip() {
  local file=$1; shift
  local packed="$file.andz" restored="$file.restored" decompress_model=()
  [[ $1 == --model ]] && decompress_model=(--model "$2")
  andromeda compress "$file" "$packed" "$@"
  uptime
  andromeda decompress "$packed" "$restored" "${decompress_model[@]}"
  cmp "$file" "$restored" && echo "round trip: identical ($(size "$file") bytes)"
  echo "andromeda $*: $(bpb "$(size "$packed")" "$(size "$file")") bpb"
}

if [[ $part == offline || $part == all ]]; then
  (
    date -u
    node -e 'console.log(process.version)'; nproc; uptime
    jsonl_text corpus/*/*.val.jsonl >"$work/held-out.txt"
    echo "held-out text: $(size "$work/held-out.txt") bytes (every *.val.jsonl of corpus/)"
    andromeda train --out "$work/model" --overwrite --tokenizer byte --preset tiny --seed 0 --batch-size 16 \
      --seq-len 128 --lr 3e-3 --warmup 50 --weight-decay 0.1 --clip 1 --steps 100000 \
      --max-minutes "${TRAIN_MINUTES:-12}" --eval-every 400 --eval-tokens 8192 --final-eval-tokens 32768 \
      --checkpoint-every 400 --device cpu --quiet 2>&1 | tail -n 12
    classic "$work/held-out.txt"
    andromeda_round_trip "$work/held-out.txt" --model "$work/model" --context 128 --overlap 96
    date -u
  ) 2>&1 | tee "$logs/offline.log"
fi

if [[ $part == online || $part == all ]]; then
  (
    date -u
    node -e 'console.log(process.version)'; nproc; uptime
    jsonl_text corpus/prose/moby-dick.train.jsonl >"$work/moby-dick.txt"
    echo "online text: $(size "$work/moby-dick.txt") bytes (corpus/prose/moby-dick.train.jsonl)"
    classic "$work/moby-dick.txt"
    export ANDROMEDA_THREADS=${ANDROMEDA_THREADS:-1}
    echo "ANDROMEDA_THREADS=$ANDROMEDA_THREADS"
    uptime
    andromeda_round_trip "$work/moby-dick.txt" --online
    uptime
    andromeda compress "$work/moby-dick.txt" "$work/moby-dick.model-only.andz" --online --mix off
    echo "andromeda --online --mix off: $(bpb "$(size "$work/moby-dick.model-only.andz")" "$(size "$work/moby-dick.txt")") bpb"
    uptime
    node dist/bench/compress-mixer-alone.js "$work/moby-dick.txt" --streams 4
    uptime
    date -u
  ) 2>&1 | tee "$logs/online.log"
fi
