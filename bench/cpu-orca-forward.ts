// Forward pass of the `orca` preset (36.7M parameters) over 8,192 tokens on the CPU engine, without
// autograd, fused attention: time, tokens per second, peak engine memory.
//   ANDROMEDA_THREADS=<n> node dist/bench/cpu-orca-forward.js [seqLen] [--profile]
import { getEngine } from '../src/engine/index.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { Tensor } from '../src/tensor/tensor.js';
import { tidy } from '../src/tensor/scope.js';
import { noGrad } from '../src/autograd/grad-mode.js';
import { narrow } from '../src/ops/layout.js';
import { Andromeda } from '../src/model/andromeda.js';
import { profileKernels } from './cpu-profile.js';

const args = process.argv.slice(2);
const seqLen = Number(args.find((a) => /^\d+$/.test(a)) ?? 8192);
const cpu = getEngine('cpu') as CpuEngine;
const kernels = args.includes('--profile') ? profileKernels(cpu) : null;
const model = Andromeda.fromPreset('orca', {}, { seed: 0 });
let seed = 7;
const ids = Int32Array.from({ length: seqLen }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % 20000);
const tokens = Tensor.fromArray(ids, [1, seqLen], 'int32');

const run = (): { ms: number; finite: boolean } =>
  tidy(() =>
    noGrad(() => {
      const start = performance.now();
      const logits = model.forward(tokens);
      const ms = performance.now() - start;
      // Only the last position is read back (all 8,192 × 20,000 logits would be 655 MB of copying).
      const last = narrow(logits, 1, seqLen - 1, 1).toArray();
      return { ms, finite: last.every(Number.isFinite) };
    }),
  );

run();
kernels?.reset();
cpu.resetPeakMemory();
const before = cpu.memoryStats().allocated;
const timed = [run(), run()];
const ms = Math.min(...timed.map((t) => t.ms));
console.log(
  `RESULT ${JSON.stringify({
    bench: 'cpu-orca-forward',
    params: model.parameterCount(),
    seq: seqLen,
    threads: cpu.threads(),
    ms: Math.round(ms),
    tok_s: Math.round(seqLen / (ms / 1000)),
    finite: timed.every((t) => t.finite),
    peak_activation_mib: Math.round((cpu.memoryStats().peakAllocated - before) / 2 ** 20),
    cpu: cpu.cpuInfo?.(),
    ...(kernels ? { kernels_ms_total_2_runs: kernels.read() } : {}),
  })}`,
);
model.dispose();
tokens.dispose();
