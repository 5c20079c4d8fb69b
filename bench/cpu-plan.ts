// The planner against the CPU engine on this machine: three configurations (decoding through the InferenceEngine,
// training with activation checkpointing, training with 8-bit AdamW), each predicted and then run, with the
// allocator's measured peak (native/cpu/binding.cc counts every tensor) and the measured tokens/s beside the plan.
//   node dist/bench/cpu-plan.js [--jsonl FILE]
// Tokens/s on a shared machine move with its load: the load average before and after is printed with the table.
import '../src/engine/index.js';
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { getEngine } from '../src/engine/registry.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { presetConfig } from '../src/model/presets.js';
import { planRun } from '../src/plan/plan.js';
import { cpuDevice } from '../src/plan/cpu-device.js';
import { measureInference, measureTraining } from '../src/plan/measure.js';
import type { Workload } from '../src/plan/workload.js';

const args = process.argv.slice(2);
const jsonl = args.includes('--jsonl') ? args[args.indexOf('--jsonl') + 1]! : null;
const training = {
  mode: 'training',
  precision: 'float32',
  gradAccum: 1,
  gpus: 1,
  zeroStage: 0,
} as const;
const configs: Array<{ preset: string; workload: Workload }> = [
  {
    // The decode case of bench/results/cpu-decode-vs-llamacpp.md: small, a 16-token prompt, 256 tokens.
    preset: 'small',
    workload: {
      mode: 'inference',
      batch: 1,
      promptTokens: 16,
      outputTokens: 256,
      kvDtype: 'float32',
      blockSize: 32,
      tokenBudget: 512,
      cudaGraphs: false,
    },
  },
  {
    preset: 'small',
    workload: { ...training, batch: 8, seqLen: 256, optimizer: 'adamw', activationCheckpointing: true },
  },
  {
    preset: 'small',
    workload: { ...training, batch: 8, seqLen: 256, optimizer: 'adamw8bit', activationCheckpointing: false },
  },
];

const engine = getEngine('cpu') as CpuEngine;
console.log(
  `# CPU engine, ${engine.threads()} threads (${engine.cpuInfo().isa}); load average before: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(', ')}`,
);
for (const { preset, workload } of configs) {
  const config = presetConfig(preset, { maxSeqLen: 4096 });
  const plan = planRun({ name: preset, config }, workload, cpuDevice());
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  const measured =
    workload.mode === 'training'
      ? measureTraining(config, workload, 'cpu', { steps: 5, warmup: 1 })
      : await measureInference(config, workload, 'cpu');
  // The share of the engine's threads' time this process got: near 1 on an idle machine, lower when others run.
  const cpuSeconds = (() => {
    const used = process.cpuUsage(cpuBefore);
    return (used.user + used.system) / 1e6;
  })();
  const cpuShare = cpuSeconds / (((performance.now() - wallBefore) / 1000) * engine.threads());
  const measuredTokens =
    'decodeTokensPerSecond' in measured ? measured.decodeTokensPerSecond : measured.tokensPerSecond;
  const result = {
    bench: 'cpu-plan',
    preset,
    workload,
    predicted: {
      peakBytes: plan.peakBytes,
      tokensPerSecond: Math.round(plan.throughput!.tokensPerSecond),
      peakMoment: plan.peakMoment,
      lines: plan.lines.map((l) => ({ label: l.label, bytes: l.bytes })),
    },
    measured: { ...measured, tokensPerSecond: Math.round(measuredTokens) },
    peakRatio: Number((plan.peakBytes / measured.peakBytes).toFixed(4)),
    speedRatio: Number((plan.throughput!.tokensPerSecond / measuredTokens).toFixed(4)),
    cpuShare: Number(cpuShare.toFixed(3)),
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  if (jsonl) appendFileSync(jsonl, `${JSON.stringify(result)}\n`);
}
console.log(
  `# load average after: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(', ')}`,
);
