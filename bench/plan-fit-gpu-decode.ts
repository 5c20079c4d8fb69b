/**
 * Fits four of the planner's GPU decode terms (src/plan/throughput.ts GPU_EFFICIENCY) — decodeSecondsPerLayer,
 * decodeSecondsPerLayerRequest and the decode kernel's setupSeconds and secondsPerSlice — to measured decode runs,
 * the rest of the model held: a step is linear in the four, so each run is planned with them at zero and with each
 * alone, and a grid over the four minimises the largest |predicted / measured − 1|; then each run's prediction.
 * Runs: the inference rows of bench/gpu-plan.sh's results.jsonl, and the RESULT lines of bench/gpu-decode.ts logs
 * (single:N as 1 × (N + new), batch:B as B × (128 + new); the runs of one case averaged over the logs given).
 * --hold-kernel keeps the decode kernel's two terms as they are (e.g. set from bench/gpu-paged-attention.ts's own
 * timings of the kernel) and fits the other two.
 *   node dist/bench/plan-fit-gpu-decode.js --plan results.jsonl --decode decode-1.log decode-2.log [--hold-kernel]
 */
import { readFileSync } from 'node:fs';
import { presetConfig } from '../src/model/presets.js';
import { planRun } from '../src/plan/plan.js';
import { GPUS } from '../src/plan/devices.js';
import { GPU_EFFICIENCY } from '../src/plan/throughput.js';
import type { InferenceWorkload } from '../src/plan/workload.js';

interface Run {
  name: string;
  preset: string;
  workload: InferenceWorkload;
  measured: number;
}

const args = process.argv.slice(2);
const after = (flag: string): string[] => {
  const at = args.indexOf(flag);
  if (at < 0) return [];
  const end = args.findIndex((a, i) => i > at && a.startsWith('--'));
  return args.slice(at + 1, end < 0 ? undefined : end);
};
const results = (file: string): Record<string, unknown>[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('RESULT ') || l.startsWith('{'))
    .map((l) => JSON.parse(l.replace(/^RESULT /, '')) as Record<string, unknown>);

const gpu = GPUS.find((g) => g.name === 'H100 SXM 80GB')!;
const runs: Run[] = [];
for (const file of after('--plan'))
  for (const r of results(file)) {
    const w = r.workload as InferenceWorkload;
    if (w.mode !== 'inference') continue;
    const measured = (r.measured as { tokensPerSecond: number }).tokensPerSecond;
    const name = `${r.preset} ${w.batch} × (${w.promptTokens} + ${w.outputTokens})`;
    runs.push({ name, preset: r.preset as string, workload: w, measured });
  }
const decode = new Map<string, Run & { values: number[] }>();
for (const file of after('--decode'))
  for (const r of results(file)) {
    if (r.bench !== 'gpu-decode') continue;
    const [kind, size] = String(r.case).split(':') as [string, string];
    const single = kind === 'single';
    const batch = single ? 1 : Number(size);
    const prompt = single ? Number(size) : 128;
    const name = `${r.preset} ${batch} × (${prompt} + ${r.new}), decode bench`;
    const workload: InferenceWorkload = {
      mode: 'inference',
      batch,
      promptTokens: prompt,
      outputTokens: Number(r.new),
      kvDtype: 'bfloat16',
      blockSize: 32,
      tokenBudget: 2048,
      cudaGraphs: true,
    };
    const value = Number(single ? r.decode_tok_s : r.aggregate_tok_s);
    const run = decode.get(name) ?? { name, preset: r.preset as string, workload, measured: 0, values: [] };
    run.values.push(value);
    run.measured = run.values.reduce((a, b) => a + b, 0) / run.values.length;
    decode.set(name, run);
  }
runs.push(...decode.values());
if (runs.length === 0) throw new Error('plan-fit-gpu-decode: no runs (give --plan and/or --decode files)');

const efficiency = GPU_EFFICIENCY as { decodeSecondsPerLayer: number; decodeSecondsPerLayerRequest: number };
const before = { ...efficiency };
const predict = (run: Run): number => {
  const config = presetConfig(run.preset, { maxSeqLen: 1 << 20 });
  return planRun({ name: run.preset, config }, run.workload, gpu).throughput!.tokensPerSecond;
};
const kernel = GPU_EFFICIENCY.decodeKernel as { setupSeconds: number; secondsPerSlice: number };
const perSliceBefore = kernel.secondsPerSlice;
const setupBefore = kernel.setupSeconds;
const stepOf = (r: Run, layer: number, request: number, slice: number, setup: number): number => {
  efficiency.decodeSecondsPerLayer = layer;
  efficiency.decodeSecondsPerLayerRequest = request;
  kernel.secondsPerSlice = slice;
  kernel.setupSeconds = setup;
  return r.workload.batch / predict(r);
};
// Each run's step as rest + layer · Lᵢ + request · Qᵢ + slice · Sᵢ, its coefficients from plans at one term each.
const unit = 1e-6;
const terms = runs.map((r) => {
  const rest = stepOf(r, 0, 0, 0, 0);
  return {
    rest,
    layer: (stepOf(r, unit, 0, 0, 0) - rest) / unit,
    request: (stepOf(r, 0, unit, 0, 0) - rest) / unit,
    slice: (stepOf(r, 0, 0, unit, 0) - rest) / unit,
    setup: (stepOf(r, 0, 0, 0, unit) - rest) / unit,
  };
});
efficiency.decodeSecondsPerLayer = before.decodeSecondsPerLayer;
efficiency.decodeSecondsPerLayerRequest = before.decodeSecondsPerLayerRequest;
kernel.secondsPerSlice = perSliceBefore;
kernel.setupSeconds = setupBefore;
const predictWith = (i: number, layer: number, request: number, slice: number, setup: number): number => {
  const t = terms[i]!;
  return runs[i]!.workload.batch / (t.rest + layer * t.layer + request * t.request + slice * t.slice + setup * t.setup);
};
const worstWith = (layer: number, request: number, slice: number, setup: number): number => {
  let worst = 0;
  for (let i = 0; i < runs.length; i++)
    worst = Math.max(worst, Math.abs(predictWith(i, layer, request, slice, setup) / runs[i]!.measured - 1));
  return worst;
};
const hold = args.includes('--hold-kernel');
const slices = hold ? [perSliceBefore] : Array.from({ length: 141 }, (_, i) => 2e-6 + i * 0.1e-6);
const setups = hold ? [setupBefore] : Array.from({ length: 61 }, (_, i) => i * 0.5e-6);
let best = { layer: 0, request: 0, slice: 0, setup: 0, error: Infinity };
for (let layer = 0; layer <= 20e-6; layer += hold ? 0.05e-6 : 0.25e-6)
  for (let request = 0; request <= 2e-6; request += 0.01e-6)
    for (const slice of slices)
      for (const setup of setups) {
        const error = worstWith(layer, request, slice, setup);
        if (error < best.error) best = { layer, request, slice, setup, error };
      }
const table = (label: string, layer: number, request: number, slice: number, setup: number) => {
  console.log(`\n${label}\n| run | predicted | measured | error |\n|---|---|---|---|`);
  for (const [i, r] of runs.entries()) {
    const p = predictWith(i, layer, request, slice, setup);
    console.log(
      `| ${r.name} | ${Math.round(p)} | ${Math.round(r.measured)} | ${((p / r.measured - 1) * 100).toFixed(1)}% |`,
    );
  }
};
table(
  `current terms: ${(before.decodeSecondsPerLayer * 1e6).toFixed(2)} µs a layer, ` +
    `${(before.decodeSecondsPerLayerRequest * 1e6).toFixed(2)} µs a layer and request, ` +
    `${(perSliceBefore * 1e6).toFixed(2)} µs a slice, ${(setupBefore * 1e6).toFixed(2)} µs a wave's setup`,
  before.decodeSecondsPerLayer,
  before.decodeSecondsPerLayerRequest,
  perSliceBefore,
  setupBefore,
);
table(
  `fitted: ${(best.layer * 1e6).toFixed(2)} µs a layer, ${(best.request * 1e6).toFixed(2)} µs a layer and request, ` +
    `${(best.slice * 1e6).toFixed(2)} µs a slice, ${(best.setup * 1e6).toFixed(2)} µs a wave's setup ` +
    `(largest error ${(best.error * 100).toFixed(1)}%)`,
  best.layer,
  best.request,
  best.slice,
  best.setup,
);
