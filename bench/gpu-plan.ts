// The planner against the CUDA engine: one configuration per process (a fresh allocator, so its peak is this
// run's alone), predicted peak and tokens/s beside the allocator's measured peak and the measured tokens/s.
//   node dist/bench/gpu-plan.js train <preset> <batch> <seqLen> [adamw|adamw8bit] [checkpoint]
//   node dist/bench/gpu-plan.js infer <preset> <batch> <promptTokens> <outputTokens>
// Prints one RESULT line of JSON (bench/gpu-plan.sh makes the table from them).
import { getEngine } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { presetConfig } from '../src/model/presets.js';
import { planRun } from '../src/plan/plan.js';
import { GPUS, gpuFromDescription } from '../src/plan/devices.js';
import { measureInference, measureTraining } from '../src/plan/measure.js';
import type { Workload } from '../src/plan/workload.js';

const [mode, preset = 'orca', ...rest] = process.argv.slice(2);
const device = process.env.ANDROMEDA_BENCH_DEVICE ?? 'cuda';
const engine = getEngine(device) as CudaEngine;
const description = engine.description ?? device;
const gpu = gpuFromDescription(description) ?? GPUS[0]!;
// andromeda-3b with the vocabulary its tokenizer gives (as bench/gpu-decode.ts); orca as the preset has it.
const config = presetConfig(preset, { maxSeqLen: 1 << 20 });
const model = { name: preset, config };

let workload: Workload;
if (mode === 'train') {
  const [batch = '1', seqLen = '2048', ...flags] = rest;
  workload = {
    mode: 'training',
    batch: Number(batch),
    seqLen: Number(seqLen),
    precision: 'bfloat16',
    optimizer: flags.includes('adamw8bit') ? 'adamw8bit' : 'adamw',
    activationCheckpointing: flags.includes('checkpoint'),
    gradAccum: 1,
    gpus: 1,
    zeroStage: 0,
  };
} else if (mode === 'infer') {
  const [batch = '1', prompt = '2048', output = '128'] = rest;
  workload = {
    mode: 'inference',
    batch: Number(batch),
    promptTokens: Number(prompt),
    outputTokens: Number(output),
    kvDtype: 'bfloat16',
    blockSize: 32,
    tokenBudget: 2048,
    cudaGraphs: true,
  };
} else {
  throw new Error(`usage: gpu-plan.js train|infer <preset> ... (got '${mode}')`);
}

const plan = planRun(model, workload, gpu);
const throughput = plan.throughput!; // a table GPU has speed figures
const GiB = 2 ** 30;
let measured: { peakBytes: number; tokensPerSecond: number; prefillTokensPerSecond?: number; steadyBytes?: number };
let error: string | null = null;
try {
  if (workload.mode === 'training') {
    const m = measureTraining(config, workload, device, { steps: 10, warmup: 3 });
    measured = { peakBytes: m.peakBytes, tokensPerSecond: m.tokensPerSecond, steadyBytes: m.steadyBytes };
  } else {
    const m = await measureInference(config, workload, device);
    measured = {
      peakBytes: m.peakBytes,
      tokensPerSecond: m.decodeTokensPerSecond,
      prefillTokensPerSecond: m.prefillTokensPerSecond,
    };
  }
} catch (e) {
  error = (e as Error).message;
  measured = { peakBytes: NaN, tokensPerSecond: NaN };
}
const ratio = (a: number, b: number) => Number((a / b).toFixed(4));
console.log(
  `RESULT ${JSON.stringify({
    bench: 'gpu-plan',
    device: description,
    table: gpu.name,
    preset,
    workload,
    predicted: {
      peakBytes: plan.peakBytes,
      peakGiB: Number((plan.peakBytes / GiB).toFixed(3)),
      tokensPerSecond: Math.round(throughput.tokensPerSecond),
      prefillTokensPerSecond: throughput.prefillTokensPerSecond && Math.round(throughput.prefillTokensPerSecond),
      peakMoment: plan.peakMoment,
      lines: plan.lines.map((l) => ({ label: l.label, bytes: l.bytes })),
    },
    measured: {
      ...measured,
      peakGiB: Number((measured.peakBytes / GiB).toFixed(3)),
      tokensPerSecond: Math.round(measured.tokensPerSecond),
      prefillTokensPerSecond: measured.prefillTokensPerSecond && Math.round(measured.prefillTokensPerSecond),
    },
    peakRatio: ratio(plan.peakBytes, measured.peakBytes),
    speedRatio: ratio(throughput.tokensPerSecond, measured.tokensPerSecond),
    error,
  })}`,
);
