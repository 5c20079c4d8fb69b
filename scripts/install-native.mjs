#!/usr/bin/env node
// npm install hook: use the prebuilt engines in prebuilds/<platform>-<arch>/ when one matches this machine
// (node-gyp-build's rules: platform, architecture, N-API, libc); compile from source only what has none:
// the CPU engine always (g++, make), the CUDA engine when nvcc exists.
//
// Environment: ANDROMEDA_BUILD_FROM_SOURCE=1 or `npm install --build-from-source` compiles even when a prebuild
// matches; ANDROMEDA_SKIP_CUDA=1 never builds the CUDA engine (as in scripts/build-native.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const fromSource =
  process.env.ANDROMEDA_BUILD_FROM_SOURCE === '1' || process.env.npm_config_build_from_source === 'true';

/** The prebuilt addon node-gyp-build would pick for `addon` (e.g. "andromeda_cpu"), or null. */
function matchingPrebuild(addon) {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  if (!existsSync(dir)) return null;
  const gypBuild = createRequire(import.meta.url)('node-gyp-build');
  const best = readdirSync(dir)
    .filter((name) => name.startsWith(`${addon}.`))
    .map((name) => gypBuild.parseTags(name))
    .filter(gypBuild.matchTags('node', process.versions.modules))
    .sort(gypBuild.compareTags('node'))[0];
  return best ? join(dir, best.file) : null;
}

function onPath(command) {
  if (command.includes('/')) return existsSync(command);
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

function run(script, args, env) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', script), ...args], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const cpu = fromSource ? null : matchingPrebuild('andromeda_cpu');
if (cpu) console.log(`andromeda: using the prebuilt CPU engine ${cpu}`);
else run('build-native.mjs', [], { ANDROMEDA_SKIP_CUDA: '1' });

if (process.env.ANDROMEDA_SKIP_CUDA !== '1') {
  const cuda = fromSource ? null : matchingPrebuild('andromeda_cuda');
  const hostCompiler = process.env.CXX ?? 'g++';
  if (cuda) console.log(`andromeda: using the prebuilt CUDA engine ${cuda}`);
  else if (!onPath(hostCompiler))
    // The CUDA engine is optional: without a prebuild or a compiler for nvcc's host code, install the CPU engine.
    console.log(`andromeda: no prebuilt CUDA engine for this machine and no ${hostCompiler} to build one: CPU only.`);
  else run('build-cuda.mjs', ['--optional'], {});
}
