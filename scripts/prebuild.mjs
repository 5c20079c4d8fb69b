#!/usr/bin/env node
// Makes the prebuilt engines that `npm pack` ships: prebuilds/<platform>-<arch>/andromeda_cpu.napi.<libc>.node
// (the CPU engine) and andromeda_cuda.napi.<libc>.node (the CUDA engine, for sm_80 and sm_90a unless
// ANDROMEDA_CUDA_ARCHS says otherwise), named with prebuildify's tags so node-gyp-build's rules pick them
// (scripts/install-native.mjs at install, src/engine/native-engine.ts at run time). prebuildify itself drives one
// node-gyp target per package and cannot run nvcc, so this script builds with the project's own build scripts and
// lays the files out as prebuildify does.
//
//   node scripts/prebuild.mjs [--cpu-only] [--no-build]
//
// --cpu-only: only the CPU engine (machines without nvcc). --no-build: package the engines already in
// build/Release (e.g. those `npm ci` just compiled) instead of rebuilding them.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const args = process.argv.slice(2);
for (const a of args)
  if (a !== '--cpu-only' && a !== '--no-build') {
    console.error(`prebuild: unknown option ${a} (use --cpu-only, --no-build)`);
    process.exit(2);
  }
const cpuOnly = args.includes('--cpu-only');
const build = !args.includes('--no-build');
const libc = existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
const outDir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);

function run(command, commandArgs, env = {}) {
  const r = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`prebuild: ${command} ${commandArgs.join(' ')} failed (exit ${r.status})`);
    process.exit(1);
  }
}

if (build) {
  run(process.execPath, [join(root, 'scripts', 'build-native.mjs')], { ANDROMEDA_SKIP_CUDA: '1' });
  if (!cpuOnly) run(process.execPath, [join(root, 'scripts', 'build-cuda.mjs')]);
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
for (const addon of cpuOnly ? ['andromeda_cpu'] : ['andromeda_cpu', 'andromeda_cuda']) {
  const built = join(root, 'build', 'Release', `${addon}.node`);
  if (!existsSync(built)) {
    console.error(`prebuild: ${built} is missing (run without --no-build, or build it first)`);
    process.exit(1);
  }
  const target = join(outDir, `${addon}.napi.${libc}.node`);
  copyFileSync(built, target);
  // Symbols are for debugging builds; users download the binary.
  if (process.platform === 'linux') run('strip', ['--strip-unneeded', target]);
  console.log(`prebuild: ${target} (${(statSync(target).size / 1e6).toFixed(1)} MB)`);
}
