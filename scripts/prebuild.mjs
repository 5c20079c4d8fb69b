#!/usr/bin/env node
// Makes the prebuilt engines that `npm pack` ships: prebuilds/<platform>-<arch>/andromeda_cpu.napi.<libc>.node
// (the CPU engine) and andromeda_cuda.napi.<libc>.node (the CUDA engine, for sm_80 and sm_90a unless
// ANDROMEDA_CUDA_ARCHS says otherwise), named with prebuildify's tags so node-gyp-build's rules pick them
// (scripts/install-native.mjs at install, src/engine/native-engine.ts at run time). prebuildify itself drives one
// node-gyp target per package and cannot run nvcc, so this script builds with the project's own build scripts and
// lays the files out as prebuildify does.
//
//   node scripts/prebuild.mjs [--cpu-only] [--no-build] [--arch <arch>]
//
// --cpu-only: only the CPU engine (machines without nvcc). --no-build: package the engines already built
// (e.g. those `npm ci` just compiled in build/Release) instead of rebuilding them. --arch arm64 on an x64 Linux
// machine: the CPU engine cross-compiled for that architecture (scripts/build-native.mjs --arch; needs
// aarch64-linux-gnu-g++, or CXX set), as prebuilds/linux-arm64/andromeda_cpu.napi.glibc.node; it implies
// --cpu-only (the CUDA engine is built for this machine's architecture only).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const args = process.argv.slice(2);
let arch = process.arch;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--cpu-only' || a === '--no-build') continue;
  const value = a.startsWith('--arch=') ? a.slice('--arch='.length) : a === '--arch' ? args[++i] : undefined;
  if (value === undefined) {
    console.error(`prebuild: unknown option ${a} (use --cpu-only, --no-build, --arch <arch>)`);
    process.exit(2);
  }
  if (!/^[a-z0-9]+$/.test(value)) {
    console.error(`prebuild: --arch must be a Node architecture name such as arm64, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  arch = value;
}
const cross = arch !== process.arch;
const cpuOnly = cross || args.includes('--cpu-only');
const build = !args.includes('--no-build');
const libc = existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
const outDir = join(root, 'prebuilds', `${process.platform}-${arch}`);
// Where scripts/build-native.mjs puts each engine: build/Release for this machine, its own node-gyp tree for
// another architecture.
const builtDir = cross
  ? join(root, 'build', `${process.platform}-${arch}`, 'build', 'Release')
  : join(root, 'build', 'Release');

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

function run(command, commandArgs, env = {}) {
  const r = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`prebuild: ${command} ${commandArgs.join(' ')} failed (exit ${r.status})`);
    process.exit(1);
  }
}

if (build) {
  const archArgs = cross ? ['--arch', arch] : [];
  run(process.execPath, [join(root, 'scripts', 'build-native.mjs'), ...archArgs], { ANDROMEDA_SKIP_CUDA: '1' });
  if (!cpuOnly) run(process.execPath, [join(root, 'scripts', 'build-cuda.mjs')]);
}
// The cross toolchain's strip reads the other architecture's binaries (binutils' own may not).
const crossStrip = { arm64: 'aarch64-linux-gnu-strip', x64: 'x86_64-linux-gnu-strip' }[arch];
const strip = cross && crossStrip && onPath(crossStrip) ? crossStrip : 'strip';

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
for (const addon of cpuOnly ? ['andromeda_cpu'] : ['andromeda_cpu', 'andromeda_cuda']) {
  const built = join(builtDir, `${addon}.node`);
  if (!existsSync(built)) {
    console.error(`prebuild: ${built} is missing (run without --no-build, or build it first)`);
    process.exit(1);
  }
  const target = join(outDir, `${addon}.napi.${libc}.node`);
  copyFileSync(built, target);
  // Symbols are for debugging builds; users download the binary.
  if (process.platform === 'linux') run(strip, ['--strip-unneeded', target]);
  console.log(`prebuild: ${target} (${(statSync(target).size / 1e6).toFixed(1)} MB)`);
}
