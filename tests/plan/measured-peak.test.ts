// The planner against the CPU engine's own allocation counter (native/cpu/binding.cc: every tensor, rounded to
// 64 B): three configurations run for real — inference through the InferenceEngine, training with activation
// checkpointing, training with 8-bit AdamW — and the predicted peak must be within 5% of the measured one.
import '../../src/engine/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { presetConfig } from '../../src/model/presets.js';
import { planRun } from '../../src/plan/plan.js';
import { cpuDevice } from '../../src/plan/cpu-device.js';
import { measureInference, measureTraining } from '../../src/plan/measure.js';
import type { InferenceWorkload, TrainingWorkload } from '../../src/plan/workload.js';

const within = (predicted: number, measured: number, what: string, tolerance = 0.05): void => {
  const error = predicted / measured - 1;
  assert.ok(
    Math.abs(error) <= tolerance,
    `${what}: predicted ${predicted} B, measured ${measured} B (${(error * 100).toFixed(2)}%)`,
  );
};

const training = (o: Partial<TrainingWorkload>): TrainingWorkload => ({
  mode: 'training',
  batch: 2,
  seqLen: 128,
  precision: 'float32',
  optimizer: 'adamw',
  activationCheckpointing: false,
  gradAccum: 1,
  gpus: 1,
  zeroStage: 0,
  ...o,
});

test('inference: the paged KV cache, weights and prefill working set match the engine within 5%', async () => {
  const config = presetConfig('small', { maxSeqLen: 1024 });
  const workload: InferenceWorkload = {
    mode: 'inference',
    batch: 3,
    promptTokens: 150,
    outputTokens: 20,
    kvDtype: 'float32',
    blockSize: 16,
    tokenBudget: 256,
    cudaGraphs: false,
  };
  const plan = planRun({ name: 'small', config }, workload, cpuDevice());
  const measured = await measureInference(config, workload, 'cpu');
  within(plan.peakBytes, measured.peakBytes, 'small, 3 requests of 150 + 20');
});

test('training with activation checkpointing matches the engine within 5%', () => {
  const config = presetConfig('small', { maxSeqLen: 1024 });
  const workload = training({ batch: 2, seqLen: 192, activationCheckpointing: true });
  const plan = planRun({ name: 'small', config }, workload, cpuDevice());
  const measured = measureTraining(config, workload, 'cpu', { steps: 2, warmup: 1 });
  within(plan.peakBytes, measured.peakBytes, 'small, 2 × 192, checkpointing');
  // The checkpointed run keeps block inputs only: its plan must be well under the same run without it.
  const full = planRun({ name: 'small', config }, { ...workload, activationCheckpointing: false }, cpuDevice());
  assert.ok(plan.peakBytes < full.peakBytes, 'checkpointing lowers the planned peak');
});

test('training with 8-bit AdamW matches the engine within 5%', () => {
  const config = presetConfig('tiny', { maxSeqLen: 1024 });
  const workload = training({ batch: 3, seqLen: 100, optimizer: 'adamw8bit' });
  const plan = planRun({ name: 'tiny', config }, workload, cpuDevice());
  const measured = measureTraining(config, workload, 'cpu', { steps: 2, warmup: 1 });
  within(plan.peakBytes, measured.peakBytes, 'tiny, 3 × 100, adamw8bit');
  // Between steps the engine holds weights and optimizer state: the plan's steady lines must match that too.
  const steady = plan.lines
    .filter((l) => l.label.startsWith('weights') || l.label.startsWith('AdamW'))
    .reduce((s, l) => s + l.bytes, 0);
  // The measurement's steady figure also holds the batch: inputs, targets, segment ids, positions (int32).
  within(steady + 4 * Math.ceil((3 * 100 * 4) / 64) * 64, measured.steadyBytes, 'weights + 8-bit state', 0.001);
});

test("the tanh GELU's composed intermediates (Gemma's GeGLU; a plain tanh GELU) are planned as kept", () => {
  for (const [what, options] of [
    ['GeGLU, tanh GELU', { ffActivation: 'geglu', geluApproximation: 'tanh' }],
    ['GELU with bias, tanh', { geluApproximation: 'tanh' }],
  ] as const) {
    const config = presetConfig('tiny', { maxSeqLen: 1024, ...options });
    const workload = training({ batch: 3, seqLen: 100 });
    const plan = planRun({ name: 'tiny', config }, workload, cpuDevice());
    const measured = measureTraining(config, workload, 'cpu', { steps: 2, warmup: 1 });
    within(plan.peakBytes, measured.peakBytes, `tiny, 3 × 100, ${what}`);
  }
});
