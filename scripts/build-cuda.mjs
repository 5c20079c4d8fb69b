#!/usr/bin/env node
// Builds the CUDA engine, build/Release/andromeda_cuda.node, with nvcc alone: the kernels (.cu) for
// sm_80 and sm_90a, the host code and N-API binding (.cc) with g++, linked against the static CUDA
// runtime. cuBLASLt is not linked: the engine opens it at run time.
//
//   node scripts/build-cuda.mjs [--optional] [--jobs N]
//
// --optional: without nvcc, say so and exit 0 (the CPU engine still works). With nvcc, a failure
// fails the build. Objects are rebuilt only when a source, header or this script changed.
// Environment: CUDA_HOME (toolkit root), ANDROMEDA_CUDA_ARCHS (e.g. "80,90a"), CXX (host compiler).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(new URL('..', import.meta.url).pathname);
const args = process.argv.slice(2);
const optional = args.includes('--optional');
const jobsArg = args.indexOf('--jobs');
const jobs = jobsArg >= 0 ? Number(args[jobsArg + 1]) : Math.max(1, availableParallelism());

const nativeDir = join(root, 'native');
const objDir = join(root, 'build', 'cuda-obj');
const output = join(root, 'build', 'Release', 'andromeda_cuda.node');

function findNvcc() {
  const candidates = [];
  for (const home of [process.env.CUDA_HOME, process.env.CUDA_PATH])
    if (home) candidates.push(join(home, 'bin', 'nvcc'));
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) candidates.push(join(dir, 'nvcc'));
  candidates.push('/usr/local/cuda/bin/nvcc');
  return candidates.find((c) => existsSync(c)) ?? null;
}

function findCudaRoot(nvcc) {
  const candidates = [process.env.CUDA_HOME, process.env.CUDA_PATH, resolve(dirname(nvcc), '..'), '/usr/local/cuda'];
  const found = candidates.find((c) => c && existsSync(join(c, 'include', 'cuda_runtime.h')));
  if (!found) throw new Error(`build-cuda: no CUDA headers next to ${nvcc}; set CUDA_HOME to the toolkit root`);
  return found;
}

function fail(message) {
  console.error(`build-cuda: ${message}`);
  process.exit(1);
}

const nvcc = findNvcc();
if (!nvcc) {
  const message = 'nvcc not found (looked in CUDA_HOME, PATH and /usr/local/cuda/bin): the CUDA engine is not built.';
  if (optional) {
    console.log(`build-cuda: ${message} The CPU engine works without it; install the CUDA toolkit to build it.`);
    process.exit(0);
  }
  fail(message);
}

const cudaRoot = findCudaRoot(nvcc);
const libDir = [join(cudaRoot, 'lib64'), join(cudaRoot, 'targets', 'x86_64-linux', 'lib'), join(cudaRoot, 'lib')].find(
  (d) => existsSync(join(d, 'libcudart_static.a')),
);
if (!libDir) fail(`libcudart_static.a not found under ${cudaRoot}`);

const require = createRequire(import.meta.url);
const napiInclude = resolve(root, require('node-addon-api').include_dir);
const nodePrefix = process.env.npm_config_nodedir ?? resolve(dirname(process.execPath), '..');
const nodeInclude = join(nodePrefix, 'include', 'node');
if (!existsSync(join(nodeInclude, 'node_api.h')))
  fail(`Node headers not found at ${nodeInclude} (set npm_config_nodedir)`);

const archs = (process.env.ANDROMEDA_CUDA_ARCHS ?? '80,90a')
  .split(',')
  .map((a) => a.trim())
  .filter(Boolean);
const gencode = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
const cxx = process.env.CXX ?? 'g++';

// Sources directly in native/cuda plus one level of kernel-family folders (native/cuda/attention/), and the CUDA
// forms of the fused ops beside their CPU forms (native/fused/<op>/cuda.cu, with the op's header). Paths are
// relative to native/; an object is named after its path.
const sourceFolders = ['cuda', 'fused'];
const listFolder = (dir) =>
  readdirSync(join(nativeDir, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? readdirSync(join(nativeDir, dir, e.name)).map((f) => join(dir, e.name, f)) : [join(dir, e.name)],
  );
const files = sourceFolders
  .flatMap(listFolder)
  .filter((f) => !f.startsWith('fused/') || !f.endsWith('.cc'))
  .sort();
// The units' own headers, and the shared ones every unit may include (native/common, the generated ABI).
const sharedHeaders = ['common', join('abi', 'generated')].flatMap((dir) =>
  readdirSync(join(nativeDir, dir))
    .filter((f) => f.endsWith('.h'))
    .map((f) => join(nativeDir, dir, f)),
);
const headers = [
  ...files.filter((f) => f.endsWith('.h') || f.endsWith('.cuh')).map((f) => join(nativeDir, f)),
  ...sharedHeaders,
];
const newestInput = Math.max(
  statSync(new URL(import.meta.url).pathname).mtimeMs,
  ...headers.map((h) => statSync(h).mtimeMs),
);

const units = files
  .filter((f) => f.endsWith('.cu') || f.endsWith('.cc'))
  .map((f) => {
    const src = join(nativeDir, f);
    const obj = join(objDir, `${f.replace(/^cuda\//, '').replaceAll('/', '_')}.o`);
    const cmd = f.endsWith('.cu')
      ? [
          nvcc,
          ['-c', '-O3', '-std=c++17', '-Xcompiler', '-fPIC', '--expt-relaxed-constexpr', ...gencode, '-o', obj, src],
        ]
      : [
          cxx,
          [
            '-c',
            '-O2',
            '-std=c++17',
            '-fPIC',
            '-Wall',
            '-DNAPI_VERSION=8',
            '-DNAPI_CPP_EXCEPTIONS',
            `-I${join(cudaRoot, 'include')}`,
            `-I${napiInclude}`,
            `-I${nodeInclude}`,
            '-o',
            obj,
            src,
          ],
        ];
    const upToDate = existsSync(obj) && statSync(obj).mtimeMs > Math.max(statSync(src).mtimeMs, newestInput);
    return { src, obj, cmd, upToDate };
  });

function run([cmd, argv]) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, argv, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('close', (code) => resolvePromise(code ?? 1));
    child.on('error', (e) => {
      console.error(e.message);
      resolvePromise(1);
    });
  });
}

mkdirSync(objDir, { recursive: true });
mkdirSync(dirname(output), { recursive: true });
const started = Date.now();
const pending = units.filter((u) => !u.upToDate);
console.log(
  `build-cuda: ${nvcc} (CUDA at ${cudaRoot}), archs ${archs.join(', ')}; compiling ${pending.length} of ` +
    `${units.length} files with ${jobs} jobs`,
);
const failures = [];
let next = 0;
async function worker() {
  while (next < pending.length) {
    const unit = pending[next++];
    const t0 = Date.now();
    const code = await run(unit.cmd);
    if (code !== 0) failures.push(unit.src);
    else console.log(`build-cuda:   ${basename(unit.src)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  }
}
await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, pending.length)) }, worker));
if (failures.length) fail(`compilation failed: ${failures.map((f) => basename(f)).join(', ')}`);

const link = spawnSync(
  cxx,
  ['-shared', '-o', output, ...units.map((u) => u.obj), `-L${libDir}`, '-lcudart_static', '-ldl', '-lrt', '-lpthread'],
  { cwd: root, stdio: 'inherit' },
);
if (link.status !== 0) fail('link failed');
console.log(`build-cuda: wrote ${output} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
