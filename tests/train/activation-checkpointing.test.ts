import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { train } from '../../src/train/trainer.js';
import '../../src/train/andromeda-adapter.js';
import { readMetrics } from '../../src/train/metrics-log.js';
import { parseFlagValue } from '../../src/train/config.js';
import { quiet, smallDataset, tempDir, toyConfig } from './helpers.js';

test('activation checkpointing trains Andromeda exactly like the plain backward pass', async () => {
  const data = await smallDataset();
  const losses: number[][] = [];
  for (const activationCheckpointing of [false, true]) {
    const out = await tempDir();
    const config = toyConfig(data, out, {
      preset: 'tiny',
      model: { depth: 3, dim: 64, headDim: 32, heads: 2, alibiHeads: 1 },
      steps: 5,
      seqLen: 32,
      evalEvery: 0,
      checkpointEvery: 0,
      activationCheckpointing,
    });
    const r = await train(config, quiet);
    r.model.dispose();
    losses.push(
      readMetrics(join(out, 'metrics.jsonl'))
        .filter((x) => x.kind === 'train')
        .map((x) => (x as { loss: number }).loss),
    );
  }
  assert.equal(losses[1]!.length, 5);
  losses[0]!.forEach((l, i) => assert.ok(Math.abs(l - losses[1]![i]!) < 1e-6, `step ${i}: ${l} vs ${losses[1]![i]}`));
  assert.equal(parseFlagValue('activationCheckpointing', 'on'), true);
});
