import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEngine } from '../../src/engine/registry.js';
import { train } from '../../src/train/trainer.js';
import { quiet, smallDataset, tempDir, toyConfig } from './helpers.js';
import { toyFamily } from './toy-model.js';

test('memory stays flat across training steps (every step runs in its own tidy scope)', async () => {
  const data = await smallDataset();
  const allocated: number[] = [];
  const engine = getEngine('cpu');
  const r = await train(
    toyConfig(data, await tempDir(), { steps: 24, evalEvery: 6, checkpointEvery: 8, gradAccum: 2 }),
    {
      family: toyFamily(16),
      ...quiet,
      onStep: () => allocated.push(engine.memoryStats().allocated),
    },
  );
  r.model.dispose();
  // From step 2 on (AdamW moments exist), live memory after every step is the same.
  const steady = allocated.slice(1);
  assert.ok(
    steady.every((a) => a === steady[0]),
    `allocated bytes per step: ${steady.join(', ')}`,
  );
});
