// Calibrates the CPU terms of the planner's throughput model (src/plan/throughput.ts, CpuTerms) in CPU
// seconds of one engine thread, which another process on the same cores does not stretch the way it stretches
// wall time:
//  - decode: the InferenceEngine decoding `small`-shaped models (4 heads of 64, one KV head) of several widths,
//    depths and batches; each step's CPU seconds are fitted as
//      perStep + perLayer·depth + perRequest·batch + perLayerRequest·depth·batch + weightBytes / weightRate
//        + rowSecondsPerWeightByte·weightBytes·(batch − 1),
//    the first four being the engine's host work (scheduler, block tables, uploads, sampling, the JavaScript of
//    each layer's ops and the native calls' fixed cost), the fifth the kernels streaming the weights for one row
//    and the last what each further request's row adds to the products (stop 19: without it the widths 384 and
//    512 at 4 requests were fitted 29–31% short, the batch-1 cases long to make up). The `small` preset itself
//    (width 256) is left out of the fit: bench/cpu-plan.ts checks the prediction on it.
//  - optimizer: clipping plus one AdamW or 8-bit AdamW step over the parameters of two model sizes, per parameter.
//  - training (only with --part training, on the engine's threads, in wall time: run it idle): the trainer's step
//    (src/plan/measure.ts) of `small`-shaped models of widths 192 and 384 (not `small`'s 256), 8 × 256 tokens,
//    AdamW, with and without activation checkpointing, in steady state; each case's forward + backward FLOPs (the
//    planner's count) over its step time less the planner's optimizer time, as a fraction of the threads' peak.
// Decode cases are the median of 5 runs, after 2 untimed runs that warm the process up (its first runs read slow).
//   ANDROMEDA_THREADS=1 node dist/bench/cpu-plan-calibrate.js [--jsonl FILE] [--part decode|optimizer]
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-plan-calibrate.js --part training [--jsonl FILE]
// `--part decode --refit A.jsonl,B.jsonl` measures nothing: it fits the decode terms over the decode cases of earlier
// runs' logs together (this VM's speed moves by 10–25% from one run to the next: a fit over several runs averages it).
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
import { measureInference, measureTraining } from '../src/plan/measure.js';
import { fitLeastSquares } from '../src/plan/least-squares.js';
import { readJsonlLogs } from './jsonl-logs.js';
import { cpuDevice } from '../src/plan/cpu-device.js';
import { cpuTerms, trainingThroughput } from '../src/plan/throughput.js';
import type { InferenceWorkload, TrainingWorkload } from '../src/plan/workload.js';

const args = process.argv.slice(2);
const jsonl = args.includes('--jsonl') ? args[args.indexOf('--jsonl') + 1]! : null;
const part = args.includes('--part') ? args[args.indexOf('--part') + 1]! : 'all';
const refit = args.includes('--refit') ? args[args.indexOf('--refit') + 1]!.split(',') : null;
if (refit && part !== 'decode') throw new Error('--refit fits the decode terms: give it with --part decode');
if (!['all', 'decode', 'optimizer', 'training'].includes(part))
  throw new Error(`--part must be decode, optimizer or training, got ${part}`);
const engine = getEngine('cpu') as CpuEngine;
if (part !== 'training' && engine.threads() !== 1)
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
console.log(
  `# CPU engine, ${engine.threads()} thread${engine.threads() === 1 ? '' : 's'} (${engine.cpuInfo().isa}); ` +
    `load average before: ${load()}`,
);

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
if (part === 'all' || part === 'decode') {
  const rows: number[][] = [];
  const cpuSecondsPerStep: number[] = [];
  const row = (depth: number, batch: number, weightBytes: number): number[] => [
    1,
    depth,
    batch,
    depth * batch,
    weightBytes,
    weightBytes * (batch - 1),
  ];
  if (refit) {
    for (const c of readJsonlLogs(refit).filter((c) => c.part === 'decode')) {
      rows.push(row(c.depth, c.batch, c.weightBytes));
      cpuSecondsPerStep.push(c.cpuSecondsPerStep);
    }
  } else {
    // The process's first decode runs are slower than its later ones (the JIT, the allocator's cache): untimed.
    for (let run = 0; run < 2; run++) await measureInference(smallShaped(64, 4), decodeWorkload(1), 'cpu');
  }
  for (const { dim, depth, batch } of refit ? [] : decodeCases) {
    const config = smallShaped(dim, depth);
    // Five runs, the median kept: runs of one case differ by up to ±20% on this VM.
    const runs: Array<{ perStep: number; steps: number; tokensPerSecond: number }> = [];
    for (let run = 0; run < 5; run++) {
      const measured = await measureInference(config, decodeWorkload(batch), 'cpu');
      runs.push({
        perStep: measured.decodeCpuSeconds / measured.decodeSteps,
        steps: measured.decodeSteps,
        tokensPerSecond: measured.decodeTokensPerSecond,
      });
    }
    const perStep = median(runs.map((r) => r.perStep));
    const weightBytes = countParameters(config) * 4;
    rows.push(row(depth, batch, weightBytes));
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
  // Relative errors are what the planner's bar counts: each case is weighted by its own step time. A term the
  // free fit makes negative (noise traded between terms: stop 18's and 19's put −14 µs on each request) is fixed
  // at zero and the rest fitted again, until none is.
  const terms = rows[0]!.map(() => true);
  let coefficients: number[] = [];
  for (;;) {
    const kept = terms.flatMap((on, j) => (on ? [j] : []));
    const fit = fitLeastSquares(
      rows.map((r, i) => kept.map((j) => r[j]! / cpuSecondsPerStep[i]!)),
      cpuSecondsPerStep.map(() => 1),
    );
    coefficients = terms.map(() => 0);
    kept.forEach((j, k) => (coefficients[j] = fit[k]!));
    const negative = kept.filter((j) => coefficients[j]! < 0);
    if (negative.length === 0) break;
    for (const j of negative) terms[j] = false;
  }
  const [perStep, perLayer, perRequest, perLayerRequest, secondsPerWeightByte, rowSecondsPerWeightByte] = coefficients;
  const fitted = rows.map((r) => r.reduce((sum, x, j) => sum + coefficients[j]! * x, 0));
  emit({
    bench: 'cpu-plan-calibrate',
    part: 'decode-fit',
    ...(refit ? { refitOf: refit.map((f) => f.split('/').pop()), cases: rows.length } : {}),
    perStepSeconds: Number(perStep!.toPrecision(3)),
    perLayerSeconds: Number(perLayer!.toPrecision(3)),
    perRequestSeconds: Number(perRequest!.toPrecision(3)),
    perLayerRequestSeconds: Number(perLayerRequest!.toPrecision(3)),
    weightBytesPerSecond: Number((1 / secondsPerWeightByte!).toPrecision(3)),
    rowSecondsPerWeightByte: Number(rowSecondsPerWeightByte!.toPrecision(3)),
    worstFitError: Number(Math.max(...fitted.map((f, i) => Math.abs(f / cpuSecondsPerStep[i]! - 1))).toFixed(3)),
  });
}

if (part === 'all' || part === 'optimizer') {
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

if (part === 'training') {
  const threads = engine.threads();
  const device = cpuDevice(threads, engine.cpuInfo().isa);
  const fractions: number[] = [];
  for (const dim of [192, 384])
    for (const activationCheckpointing of [false, true]) {
      const config = presetConfig('small', { dim, maxSeqLen: 4096 });
      const workload: TrainingWorkload = {
        mode: 'training',
        batch: 8,
        seqLen: 256,
        precision: 'float32',
        optimizer: 'adamw',
        activationCheckpointing,
        gradAccum: 1,
        gpus: 1,
        zeroStage: 0,
      };
      // Steady state: the first 6 steps still speed up (bench/cpu-plan.ts); the median of the next 9 is kept.
      const m = measureTraining(config, workload, 'cpu', { steps: 15, warmup: 6 });
      const tokens = workload.batch * workload.seqLen;
      const flops = trainingThroughput(config, workload, device).flopsPerToken * tokens;
      const optimizerSeconds =
        (cpuTerms(device).optimizerSecondsPerParameter[workload.optimizer] * countParameters(config)) / threads;
      const stepSeconds = median(m.stepSeconds);
      const fraction = flops / (device.flops * (stepSeconds - optimizerSeconds));
      fractions.push(fraction);
      emit({
        bench: 'cpu-plan-calibrate',
        part: 'training',
        threads,
        dim,
        depth: config.depth,
        workload,
        flopsPerStep: flops,
        optimizerSeconds: Number(optimizerSeconds.toPrecision(4)),
        stepSeconds: Number(stepSeconds.toPrecision(4)),
        runs: m.stepSeconds.map((x) => Number(x.toPrecision(4))),
        stepCpuSeconds: Number(median(m.stepCpuSeconds).toPrecision(4)),
        fractionOfPeak: Number(fraction.toFixed(4)),
        loadAverage: Number(loadavg()[0]!.toFixed(2)),
      });
    }
  const mean = fractions.reduce((a, b) => a + b, 0) / fractions.length;
  emit({
    bench: 'cpu-plan-calibrate',
    part: 'training-fit',
    threads,
    fractionOfPeak: Number(mean.toFixed(3)),
    worstFitError: Number(Math.max(...fractions.map((f) => Math.abs(f / mean - 1))).toFixed(3)),
  });
  console.log(`# load average after: ${load()}`);
}
