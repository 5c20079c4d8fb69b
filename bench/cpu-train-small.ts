// Training throughput of the `small` preset on the CPU engine: AdamW, batch 8 × 256, the same step
// as the PyTorch anchor (shared/anchors/anchor_decode_cpu.py, part 3; bench/cpu-train-small.py runs
// it here). Run both pinned to the same two cores:
//   ANDROMEDA_THREADS=2 taskset -c 0,1 node dist/bench/cpu-train-small.js [steps] [--profile]
// Prints one RESULT line of JSON (tok/s, per-phase times and, with --profile, time per kernel).
import { getEngine } from '../src/engine/index.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { Tensor } from '../src/tensor/tensor.js';
import { tidy } from '../src/tensor/scope.js';
import { narrow } from '../src/ops/layout.js';
import { Andromeda } from '../src/model/andromeda.js';
import { AdamW } from '../src/optim/adamw.js';
import { profileKernels } from './cpu-profile.js';

const args = process.argv.slice(2);
const steps = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
const profile = args.includes('--profile');
const batch = 8,
  seqLen = 256;
const cpu = getEngine('cpu') as CpuEngine;
const kernels = profile ? profileKernels(cpu) : null;

const model = Andromeda.fromPreset('small', {}, { seed: 0 });
const optimizer = new AdamW(model.parameters(), { lr: 3e-4 });
let seed = 12345;
const ids = Int32Array.from(
  { length: batch * (seqLen + 1) },
  () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % 256,
);
const rows = Tensor.fromArray(ids, [batch, seqLen + 1], 'int32');
const inputs = narrow(rows, 1, 0, seqLen).contiguous();
const targets = narrow(rows, 1, 1, seqLen).contiguous();

const phases = { forward: 0, backward: 0, optimizer: 0 };
function step(): number {
  const t0 = performance.now();
  const loss = tidy(() => {
    const l = model.loss(inputs, { targets });
    const t1 = performance.now();
    phases.forward += t1 - t0;
    l.backward();
    phases.backward += performance.now() - t1;
    return l.item();
  });
  const t2 = performance.now();
  optimizer.step();
  optimizer.zeroGrad();
  phases.optimizer += performance.now() - t2;
  return loss;
}

step();
phases.forward = phases.backward = phases.optimizer = 0;
kernels?.reset();
const start = performance.now();
let loss = 0;
for (let i = 0; i < steps; i++) loss = step();
const seconds = (performance.now() - start) / 1000;
const perStep = (ms: number) => Math.round((ms / steps) * 10) / 10;
console.log(
  `RESULT ${JSON.stringify({
    bench: 'cpu-train-small',
    params: model.parameterCount(),
    batch,
    seq: seqLen,
    steps,
    threads: cpu.threads(),
    tok_s: Math.round((batch * seqLen * steps) / seconds),
    ms_per_step: perStep(seconds * 1000),
    phases_ms_per_step: {
      forward: perStep(phases.forward),
      backward: perStep(phases.backward),
      optimizer: perStep(phases.optimizer),
    },
    loss,
    cpu: cpu.cpuInfo?.(),
    ...(kernels ? { kernels_ms_total: kernels.read() } : {}),
  })}`,
);
optimizer.dispose();
model.dispose();
for (const t of [rows, inputs, targets]) t.dispose();
