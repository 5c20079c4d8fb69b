// Calibrates the CPU terms of the planner's throughput model (src/plan/throughput.ts, CPU_EFFICIENCY) in CPU
// seconds of one engine thread, which another process on the same cores does not stretch the way it stretches
// wall time:
//  - decode: the InferenceEngine decoding `small`-shaped models (4 heads of 64, one KV head) of several widths,
//    depths and batches; each step's CPU seconds are fitted as
//      perStep + perLayer·depth + perRequest·batch + perLayerRequest·depth·batch + weightBytes / weightRate,
//    the first four being the engine's host work (scheduler, block tables, uploads, sampling, the JavaScript of
//    each layer's ops and the native calls' fixed cost) and the last the kernels streaming the weights. The
//    `small` preset itself (width 256) is left out of the fit: bench/cpu-plan.ts checks the prediction on it.
//  - optimizer: clipping plus one AdamW or 8-bit AdamW step over the parameters of two model sizes, per parameter.
//   ANDROMEDA_THREADS=1 node dist/bench/cpu-plan-calibrate.js [--jsonl FILE] [--part decode|optimizer]
import '../src/engine/index.js';
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { getEngine } from '../src/engine/registry.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { Andromeda } from '../src/model/andromeda.js';
import type { AndromedaConfig } from '../src/model/config.js';
import { presetConfig } from '../src/model/presets.js';
import { countParameters } from '../src/model/parameter-shapes.js';
import { Tensor } from '../src/tensor/tensor.js';
import { AdamW } from '../src/optim/adamw.js';
import { AdamW8bit } from '../src/optim/adamw8bit.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { measureInference } from '../src/plan/measure.js';
import { fitLeastSquares } from '../src/plan/least-squares.js';
import type { InferenceWorkload } from '../src/plan/workload.js';

const args = process.argv.slice(2);
const jsonl = args.includes('--jsonl') ? args[args.indexOf('--jsonl') + 1]! : null;
const part = args.includes('--part') ? args[args.indexOf('--part') + 1]! : 'all';
if (!['all', 'decode', 'optimizer'].includes(part)) throw new Error(`--part must be decode or optimizer, got ${part}`);
const engine = getEngine('cpu') as CpuEngine;
if (engine.threads() !== 1)
  throw new Error(
    `cpu-plan-calibrate measures one thread's CPU seconds: run it with ANDROMEDA_THREADS=1 (the engine has ` +
      `${engine.threads()} threads)`,
  );
const emit = (result: object): void => {
  console.log(`RESULT ${JSON.stringify(result)}`);
  if (jsonl) appendFileSync(jsonl, `${JSON.stringify(result)}\n`);
};
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
console.log(`# CPU engine, 1 thread (${engine.cpuInfo().isa}); load average before: ${load()}`);

/** `small` with another width and depth: the same ops per layer, the weights scaled. */
const smallShaped = (dim: number, depth: number): AndromedaConfig =>
  presetConfig('small', { dim, depth, maxSeqLen: 1024 });

const decodeWorkload = (batch: number): InferenceWorkload => ({
  mode: 'inference',
  batch,
  promptTokens: 16,
  outputTokens: 128,
  kvDtype: 'float32',
  blockSize: 32,
  tokenBudget: 512,
  cudaGraphs: false,
});

const decodeCases: Array<{ dim: number; depth: number; batch: number }> = [];
for (const depth of [2, 4, 8, 16]) for (const batch of [1, 4, 16]) decodeCases.push({ dim: 64, depth, batch });
for (const dim of [128, 384, 512]) for (const batch of [1, 4]) decodeCases.push({ dim, depth: 4, batch });

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
if (part !== 'optimizer') {
  const rows: number[][] = [];
  const cpuSecondsPerStep: number[] = [];
  for (const { dim, depth, batch } of decodeCases) {
    const config = smallShaped(dim, depth);
    // Three runs, the median kept: a run that shared its core's caches with a busy neighbour reads high.
    const runs: Array<{ perStep: number; steps: number; tokensPerSecond: number }> = [];
    for (let run = 0; run < 3; run++) {
      const measured = await measureInference(config, decodeWorkload(batch), 'cpu');
      runs.push({
        perStep: measured.decodeCpuSeconds / measured.decodeSteps,
        steps: measured.decodeSteps,
        tokensPerSecond: measured.decodeTokensPerSecond,
      });
    }
    const perStep = median(runs.map((r) => r.perStep));
    const weightBytes = countParameters(config) * 4;
    rows.push([1, depth, batch, depth * batch, weightBytes]);
    cpuSecondsPerStep.push(perStep);
    emit({
      bench: 'cpu-plan-calibrate',
      part: 'decode',
      dim,
      depth,
      batch,
      weightBytes,
      steps: runs[0]!.steps,
      cpuSecondsPerStep: Number(perStep.toPrecision(4)),
      runs: runs.map((r) => Number(r.perStep.toPrecision(4))),
      decodeTokensPerSecond: Math.round(median(runs.map((r) => r.tokensPerSecond))),
      decodeTokensPerCpuSecond: Math.round(batch / perStep),
    });
  }
  // Relative errors are what the planner's bar counts: each case is weighted by its own step time.
  const [perStep, perLayer, perRequest, perLayerRequest, secondsPerWeightByte] = fitLeastSquares(
    rows.map((r, i) => r.map((x) => x / cpuSecondsPerStep[i]!)),
    cpuSecondsPerStep.map(() => 1),
  );
  const fitted = rows.map(
    (r) =>
      perStep! * r[0]! +
      perLayer! * r[1]! +
      perRequest! * r[2]! +
      perLayerRequest! * r[3]! +
      secondsPerWeightByte! * r[4]!,
  );
  emit({
    bench: 'cpu-plan-calibrate',
    part: 'decode-fit',
    perStepSeconds: Number(perStep!.toPrecision(3)),
    perLayerSeconds: Number(perLayer!.toPrecision(3)),
    perRequestSeconds: Number(perRequest!.toPrecision(3)),
    perLayerRequestSeconds: Number(perLayerRequest!.toPrecision(3)),
    weightBytesPerSecond: Number((1 / secondsPerWeightByte!).toPrecision(3)),
    worstFitError: Number(Math.max(...fitted.map((f, i) => Math.abs(f / cpuSecondsPerStep[i]! - 1))).toFixed(3)),
  });
}

if (part !== 'decode') {
  // The optimizer as the trainer runs it after the backward pass: the gradients' norm for clipping, then the step.
  for (const optimizerName of ['adamw', 'adamw8bit'] as const) {
    for (const [dim, depth] of [
      [256, 4],
      [768, 8],
    ] as const) {
      const config = smallShaped(dim, depth);
      const model = new Andromeda(config, { device: 'cpu', initialize: false });
      const params = model.parameters();
      // Gradients of many distinct values, as training's are: with few (a constant fill), 8-bit AdamW's search for
      // each code is predictable and runs about five times faster (bench/results/plan.md).
      let seed = 1;
      for (const p of params)
        p.grad = Tensor.fromArray(
          Float32Array.from(
            { length: p.size },
            () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5,
          ),
          p.shape,
          'float32',
          'cpu',
        );
      const hyper = { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
      const optimizer = optimizerName === 'adamw8bit' ? new AdamW8bit(params, hyper) : new AdamW(params, hyper);
      const stepCpuSeconds: number[] = [];
      for (let step = 0; step < 12; step++) {
        const before = process.cpuUsage();
        optimizer.step({ gradScale: clipGradNorm(params, 1).scale });
        const used = process.cpuUsage(before);
        // The first steps create the optimizer's state.
        if (step >= 2) stepCpuSeconds.push((used.user + used.system) / 1e6);
      }
      const parameters = countParameters(config);
      emit({
        bench: 'cpu-plan-calibrate',
        part: 'optimizer',
        optimizer: optimizerName,
        dim,
        depth,
        parameters,
        cpuSecondsPerStep: Number(median(stepCpuSeconds).toPrecision(4)),
        nanosecondsPerParameter: Number(((median(stepCpuSeconds) / parameters) * 1e9).toPrecision(3)),
      });
      optimizer.dispose();
      for (const p of params) p.grad?.dispose();
      model.dispose();
    }
  }
  console.log(`# load average after: ${load()}`);
}
