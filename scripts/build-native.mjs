#!/usr/bin/env node
// Builds the native engines: the CPU engine always (node-gyp, bundled with npm), the CUDA engine
// when nvcc is present (it is optional: a machine without CUDA installs and runs the CPU engine).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(new URL('..', import.meta.url).pathname);

function findNodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp))
    return process.env.npm_config_node_gyp;
  const require = createRequire(import.meta.url);
  const candidates = [];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  // npm ships node-gyp inside its own node_modules.
  const npmCli = process.env.npm_execpath;
  if (npmCli) candidates.push(join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  );
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new Error('build-native: node-gyp not found (it ships with npm; set npm_config_node_gyp to its node-gyp.js)');
  return found;
}

function run(cmd, args, label) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`build-native: ${label} failed (exit ${r.status})`);
}

const jobs = String(Math.max(1, (await import('node:os')).availableParallelism()));
// Build against the running Node's own headers when they are installed (no download needed).
const prefix = resolve(dirname(process.execPath), '..');
const nodedir =
  process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const gypArgs = ['rebuild', '-j', jobs, ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
run(process.execPath, [findNodeGyp(), ...gypArgs], 'CPU engine (node-gyp rebuild)');

if (process.env.ANDROMEDA_SKIP_CUDA !== '1' && existsSync(join(root, 'scripts', 'build-cuda.mjs'))) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-cuda.mjs'), '--optional'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('build-native: CUDA engine build failed');
}
