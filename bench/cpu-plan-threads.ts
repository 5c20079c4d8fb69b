// Calibrates the planner's one CPU term that a one-thread calibration cannot see (src/plan/throughput.ts,
// CPU_EFFICIENCY.decodeThreadHandoffSeconds): with more than one engine thread, every op of a decode step hands
// its kernel to the other threads and waits for them, a cost in wall time that neither the host's one-thread CPU
// seconds nor the weights' split covers. The InferenceEngine decodes `small`-shaped models (widths 64 to 384,
// 2 to 16 layers, batch 1 and 4; `small`'s own width 256 left out, as bench/cpu-plan-calibrate.ts does); each
// step's wall time minus what the planner's other terms predict for it is fitted as perLayer·depth (the
// handoffs) + perWeightByte·weightBytes (the weights' GEMMs do not quite halve on two threads).
// Each case is the median of 5 runs, after 2 untimed runs that warm the process up (its first runs read slow).
// Wall time: run it on an idle machine.
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-plan-threads.js [--jsonl FILE] [--refit A.jsonl,B.jsonl]
// --refit measures nothing: it fits the handoff over the cases of earlier runs' logs together, against the other
// terms as they are now (this VM's speed moves by 10–25% from one run to the next: several runs average it).
import '../src/engine/index.js';
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { getEngine } from '../src/engine/registry.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { presetConfig } from '../src/model/presets.js';
import { measureInference } from '../src/plan/measure.js';
import { countParameters } from '../src/model/parameter-shapes.js';
import { fitLeastSquares } from '../src/plan/least-squares.js';
import { readJsonlLogs } from './jsonl-logs.js';
import { cpuDevice } from '../src/plan/cpu-device.js';
import { decodeStepSecondsWithoutHandoff } from '../src/plan/throughput.js';
import type { InferenceWorkload } from '../src/plan/workload.js';

const args = process.argv.slice(2);
const jsonl = args.includes('--jsonl') ? args[args.indexOf('--jsonl') + 1]! : null;
const refit = args.includes('--refit') ? args[args.indexOf('--refit') + 1]!.split(',') : null;
const engine = getEngine('cpu') as CpuEngine;
const threads = engine.threads();
if (threads < 2) throw new Error('cpu-plan-threads measures what more than one thread costs: ANDROMEDA_THREADS=2');
const emit = (result: object): void => {
  console.log(`RESULT ${JSON.stringify(result)}`);
  if (jsonl) appendFileSync(jsonl, `${JSON.stringify(result)}\n`);
};
const load = (): number => Number(loadavg()[0]!.toFixed(2));
console.log(`# CPU engine, ${threads} threads (${engine.cpuInfo().isa}); load average before: ${load()}`);

const workload = (batch: number): InferenceWorkload => ({
  mode: 'inference',
  batch,
  promptTokens: 16,
  outputTokens: 128,
  kvDtype: 'float32',
  blockSize: 32,
  tokenBudget: 512,
  cudaGraphs: false,
});
const cases: Array<{ dim: number; depth: number; batch: number }> = [];
for (const depth of [2, 4, 8, 16]) for (const batch of [1, 4]) cases.push({ dim: 64, depth, batch });
for (const dim of [128, 384]) for (const batch of [1, 4]) cases.push({ dim, depth: 4, batch });

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: number[][] = [];
const residuals: number[] = [];
const walls: number[] = [];
const device = cpuDevice(threads, engine.cpuInfo().isa);
/** One case into the fit: its measured wall seconds a step less what the other terms model for it. */
const addCase = (dim: number, depth: number, batch: number, wall: number): number => {
  const config = presetConfig('small', { dim, depth, maxSeqLen: 1024 });
  const modelled = decodeStepSecondsWithoutHandoff(config, workload(batch), device);
  rows.push([depth, countParameters(config) * 4]);
  residuals.push(wall - modelled);
  walls.push(wall);
  return modelled;
};
if (refit) {
  for (const c of readJsonlLogs(refit))
    if (c.bench === 'cpu-plan-threads' && c.part === undefined) addCase(c.dim, c.depth, c.batch, c.wallSecondsPerStep);
} else {
  for (let run = 0; run < 2; run++)
    await measureInference(presetConfig('small', { dim: 64, depth: 4, maxSeqLen: 1024 }), workload(1), 'cpu');
}
for (const { dim, depth, batch } of refit ? [] : cases) {
  const config = presetConfig('small', { dim, depth, maxSeqLen: 1024 });
  const runs: number[] = [];
  for (let run = 0; run < 5; run++) {
    const measured = await measureInference(config, workload(batch), 'cpu');
    runs.push(batch / measured.decodeTokensPerSecond);
  }
  const wall = median(runs);
  const modelled = addCase(dim, depth, batch, wall);
  emit({
    bench: 'cpu-plan-threads',
    threads,
    dim,
    depth,
    batch,
    wallSecondsPerStep: Number(wall.toPrecision(4)),
    modelledSecondsPerStep: Number(modelled.toPrecision(4)),
    loadAverage: load(),
  });
}
const [perLayer, perWeightByte] = fitLeastSquares(rows, residuals);
// How far the fitted step is from each measured one, relative to the measured step.
const worst = Math.max(
  ...rows.map((r, i) => Math.abs((perLayer! * r[0]! + perWeightByte! * r[1]! - residuals[i]!) / walls[i]!)),
);
emit({
  bench: 'cpu-plan-threads',
  part: 'handoff-fit',
  threads,
  ...(refit ? { refitOf: refit.map((f) => f.split('/').pop()), cases: rows.length } : {}),
  perLayerSeconds: Number(perLayer!.toPrecision(3)),
  perWeightByteSeconds: Number(perWeightByte!.toPrecision(3)),
  worstFitError: Number(worst.toFixed(3)),
});
console.log(`# load average after: ${load()}`);
