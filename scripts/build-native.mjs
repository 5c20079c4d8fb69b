#!/usr/bin/env node
// Builds the native engines: the CPU engine always (node-gyp, bundled with npm), the CUDA engine
// when nvcc is present (it is optional: a machine without CUDA installs and runs the CPU engine).
//
//   node scripts/build-native.mjs [--arch <arch>]
//
// --arch arm64 (on an x64 Linux machine): cross-compiles the CPU engine only, for another architecture of this
// platform, with $CXX (default: Debian/Ubuntu's aarch64-linux-gnu-g++, package g++-aarch64-linux-gnu), into
// build/<platform>-<arch>/build/Release/andromeda_cpu.node; build/Release (this machine's engines) is left alone.
// scripts/prebuild.mjs --arch arm64 ships it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(new URL('..', import.meta.url).pathname);

/** GNU cross toolchains by Node's architecture name (the prefix of gcc, g++, ar, strip). */
const CROSS_PREFIX = { arm64: 'aarch64-linux-gnu-', x64: 'x86_64-linux-gnu-' };

function parseArgs(args) {
  let arch = process.arch;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = a.startsWith('--arch=') ? a.slice('--arch='.length) : a === '--arch' ? args[++i] : undefined;
    if (value === undefined) {
      console.error(`build-native: unknown option ${a} (use --arch <${Object.keys(CROSS_PREFIX).join('|')}>)`);
      process.exit(2);
    }
    if (!(value in CROSS_PREFIX)) {
      console.error(
        `build-native: --arch must be ${Object.keys(CROSS_PREFIX).join(' or ')}, got ${JSON.stringify(value)}`,
      );
      process.exit(2);
    }
    arch = value;
  }
  return { arch };
}

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

function run(cmd, args, label, { cwd = root, env = {} } = {}) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`build-native: ${label} failed (exit ${r.status})`);
}

function onPath(command) {
  if (command.includes('/')) return existsSync(command);
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

/** Where the CPU engine cross-built for `arch` lands (scripts/prebuild.mjs reads it from the same place). */
function crossBuiltAddon(arch) {
  return join(root, 'build', `${process.platform}-${arch}`, 'build', 'Release', 'andromeda_cpu.node');
}

/**
 * Cross-compiles the CPU engine for `arch` in its own node-gyp tree, build/<platform>-<arch>/ (binding.gyp and a
 * link to native/), so that this machine's build/Release stays as it is. Node's headers are the same on every
 * architecture (N-API), so the running Node's serve.
 */
function crossBuild(arch, gypArgs) {
  const prefix = CROSS_PREFIX[arch];
  const cxx = process.env.CXX ?? `${prefix}g++`;
  const cc = process.env.CC ?? `${prefix}gcc`;
  if (!onPath(cxx)) {
    throw new Error(
      `build-native: --arch ${arch} needs a C++ compiler for ${arch}: ${cxx} is not on the PATH ` +
        `(Debian/Ubuntu: apt-get install g++-${prefix.slice(0, -1)}; or set CXX and CC)`,
    );
  }
  const tree = join(root, 'build', `${process.platform}-${arch}`);
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  copyFileSync(join(root, 'binding.gyp'), join(tree, 'binding.gyp'));
  symlinkSync(join(root, 'native'), join(tree, 'native'));
  const ar = process.env.AR ?? (onPath(`${prefix}ar`) ? `${prefix}ar` : 'ar');
  run(process.execPath, [findNodeGyp(), ...gypArgs, `--arch=${arch}`], `CPU engine for ${arch} (node-gyp rebuild)`, {
    cwd: tree,
    env: { CXX: cxx, CC: cc, LINK: cxx, AR: ar },
  });
  console.log(`build-native: ${crossBuiltAddon(arch)}`);
}

const { arch } = parseArgs(process.argv.slice(2));
const jobs = String(Math.max(1, (await import('node:os')).availableParallelism()));
// Build against the running Node's own headers when they are installed (no download needed).
const prefix = resolve(dirname(process.execPath), '..');
const nodedir =
  process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const gypArgs = ['rebuild', '-j', jobs, ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
if (arch !== process.arch) {
  crossBuild(arch, gypArgs);
  process.exit(0);
}
run(process.execPath, [findNodeGyp(), ...gypArgs], 'CPU engine (node-gyp rebuild)');

if (process.env.ANDROMEDA_SKIP_CUDA !== '1' && existsSync(join(root, 'scripts', 'build-cuda.mjs'))) {
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-cuda.mjs'), '--optional'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error('build-native: CUDA engine build failed');
}
