#!/usr/bin/env bash
# Packs this checkout's build (dist/ from `npx tsc -p .`, build/Release's two addons) as .device/NAME, so that one
# call on the GPU machine (no Node.js, no registry there) can run two builds side by side: pack the baseline, rebuild,
# pack the change, and let bench/device/call.sh swap them (`use NAME`, `addon NAME`). Also writes, once, the
# production node_modules (.device/node_modules.tar.xz); Node.js itself comes from ../shared/device/pack-node.sh.
#   bash bench/device/pack.sh NAME
set -euo pipefail
name=${1:?usage: pack.sh NAME}
cd "$(git rev-parse --show-toplevel)"
mkdir -p ".device/$name"
tar cJf ".device/$name/dist.tar.xz" --exclude='*.map' --exclude='*.d.ts' \
  dist/src dist/bench dist/tests/gpu dist/tests/helpers dist/tests/model dist/tests/plan
xz -T4 -6 -c build/Release/andromeda_cpu.node > ".device/$name/andromeda_cpu.node.xz"
strip -o "/tmp/andromeda-cuda-$name.node" build/Release/andromeda_cuda.node 2>/dev/null ||
  cp build/Release/andromeda_cuda.node "/tmp/andromeda-cuda-$name.node"
xz -T4 -6 -c "/tmp/andromeda-cuda-$name.node" > ".device/$name/andromeda_cuda.node.xz"
if [[ ! -f .device/node_modules.tar.xz ]]; then
  tmp=$(mktemp -d)
  cp package.json package-lock.json "$tmp/"
  (cd "$tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
  tar cJf .device/node_modules.tar.xz -C "$tmp" node_modules
  rm -rf "$tmp"
fi
du -sh ".device/$name"/* .device/node_modules.tar.xz
