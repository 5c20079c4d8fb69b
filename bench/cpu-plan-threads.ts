// Calibrates the planner's one CPU term that a one-thread calibration cannot see (src/plan/throughput.ts,
// CPU_EFFICIENCY.decodeThreadHandoffSeconds): with more than one engine thread, every op of a decode step hands
// its kernel to the other threads and waits for them, a cost in wall time that neither the host's one-thread CPU
// seconds nor the weights' split covers. The InferenceEngine decodes `small`-shaped models (widths 64 to 384,
// 2 to 16 layers, batch 1 and 4; `small`'s own width 256 left out, as bench/cpu-plan-calibrate.ts does); each
// step's wall time minus what the planner's other terms predict for it is fitted as perLayer·depth (the
// handoffs) + perWeightByte·weightBytes (the weights' GEMMs do not quite halve on two threads).
// Wall time: run it on an idle machine.
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-plan-threads.js [--jsonl FILE]
import '../src/engine/index.js';
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { getEngine } from '../src/engine/registry.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { presetConfig } from '../src/model/presets.js';
import { measureInference } from '../src/plan/measure.js';
import { countParameters } from '../src/model/parameter-shapes.js';
import { fitLeastSquares } from '../src/plan/least-squares.js';
import { cpuDevice } from '../src/plan/cpu-device.js';
import { decodeStepSecondsWithoutHandoff } from '../src/plan/throughput.js';
import type { InferenceWorkload } from '../src/plan/workload.js';

const args = process.argv.slice(2);
const jsonl = args.includes('--jsonl') ? args[args.indexOf('--jsonl') + 1]! : null;
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
const device = cpuDevice(threads);
for (const { dim, depth, batch } of cases) {
  const config = presetConfig('small', { dim, depth, maxSeqLen: 1024 });
  const runs: number[] = [];
  for (let run = 0; run < 3; run++) {
    const measured = await measureInference(config, workload(batch), 'cpu');
    runs.push(batch / measured.decodeTokensPerSecond);
  }
  const wall = median(runs);
  const modelled = decodeStepSecondsWithoutHandoff(config, workload(batch), device);
  const weightBytes = countParameters(config) * 4;
  rows.push([depth, weightBytes]);
  residuals.push(wall - modelled);
  walls.push(wall);
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
  perLayerSeconds: Number(perLayer!.toPrecision(3)),
  perWeightByteSeconds: Number(perWeightByte!.toPrecision(3)),
  worstFitError: Number(worst.toFixed(3)),
});
console.log(`# load average after: ${load()}`);
