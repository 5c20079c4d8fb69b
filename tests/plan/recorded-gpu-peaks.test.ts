// The planner against peaks the CUDA engine recorded on an H100 (bench/results/gpu-train-step.md, "Current":
// bench/gpu-train-step.ts, the same arrangement as src/plan/measure.ts — bf16 model, float32 masters, AdamW with
// the bf16 weights as shadows, fused attention): andromeda-3b 1 × 2,048 peaked at 43.2 GiB allocated, orca
// 4 × 8,192 at 6.5 GiB. The GPU bench (bench/gpu-plan.sh) checks more configurations on the machine itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { presetConfig } from '../../src/model/presets.js';
import { planRun } from '../../src/plan/plan.js';
import { findGpu } from '../../src/plan/devices.js';
import type { TrainingWorkload } from '../../src/plan/workload.js';

const GiB = 2 ** 30;

test('training peaks recorded on an H100 are predicted within 5%', () => {
  const h100 = findGpu('h100')!;
  const recorded: Array<[string, number, number, number]> = [
    ['andromeda-3b', 1, 2048, 43.2],
    ['orca', 4, 8192, 6.5],
  ];
  for (const [preset, batch, seqLen, peakGiB] of recorded) {
    const workload: TrainingWorkload = {
      mode: 'training',
      batch,
      seqLen,
      precision: 'bfloat16',
      optimizer: 'adamw',
      activationCheckpointing: false,
      gradAccum: 1,
      gpus: 1,
      zeroStage: 0,
    };
    const plan = planRun({ name: preset, config: presetConfig(preset, { maxSeqLen: 8192 }) }, workload, h100);
    const error = plan.peakBytes / GiB / peakGiB - 1;
    assert.ok(Math.abs(error) <= 0.05, `${preset} ${batch} × ${seqLen}: predicted ${plan.peakBytes / GiB} GiB`);
  }
});
