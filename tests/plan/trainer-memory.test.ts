// The trainer's own pre-flight memory check uses the engine model for Andromeda runs: a real `train()` of the tiny
// preset on the CPU peaks where planAndromedaTrainingMemory says (the engine's counter), and a run too large for
// the device is refused before anything is allocated, naming the trainer's flags.
import '../../src/engine/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEngine } from '../../src/engine/registry.js';
import { train } from '../../src/train/trainer.js';
import '../../src/train/andromeda-adapter.js';
import { ConfigError } from '../../src/train/config.js';
import { presetConfig } from '../../src/model/presets.js';
import { checkTrainingMemory, planAndromedaTrainingMemory } from '../../src/train/memory-plan.js';
import { quiet, smallDataset, tempDir, toyConfig } from '../train/helpers.js';

test('a real training run peaks within 5% of the trainer-facing plan', async () => {
  const data = await smallDataset();
  const out = await tempDir();
  const cfg = {
    ...toyConfig(data, out, { steps: 3, evalEvery: 0, checkpointEvery: 0, batchSize: 3, seqLen: 96 }),
    preset: 'tiny',
    model: { maxSeqLen: 128 },
    activationCheckpointing: true,
  };
  const engine = getEngine('cpu');
  const before = engine.memoryStats().allocated;
  engine.resetPeakMemory();
  const run = await train(cfg, { ...quiet, skipFinalEval: true });
  const measured = engine.memoryStats().peakAllocated - before;
  run.model.dispose();
  // The tiny preset with the byte tokenizer's vocabulary (256 bytes + end of text).
  const plan = planAndromedaTrainingMemory({
    model: presetConfig('tiny', { vocabSize: 257, maxSeqLen: 128 }),
    config: cfg,
    compute: 'float32',
    device: 'cpu',
  });
  const error = plan.bytes / measured - 1;
  assert.ok(Math.abs(error) <= 0.05, `planned ${plan.bytes} B, the run peaked at ${measured} B`);
});

test('a run that cannot fit is refused with the trainer flags of its largest part', () => {
  const plan = planAndromedaTrainingMemory({
    model: presetConfig('andromeda-3b'),
    config: { batchSize: 8, seqLen: 8192, activationCheckpointing: false, gradAccum: 1, optimizer: 'adamw' },
    compute: 'bfloat16',
    device: 'cuda',
  });
  assert.throws(
    () => checkTrainingMemory(plan, { total: 80 * 2 ** 30, free: 80 * 2 ** 30, what: 'an 80 GiB GPU' }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /the largest part is the activations .* lower --batch-size, --seq-len .*--activation-checkpointing true/.test(
        (e as Error).message,
      ),
  );
});
