import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { train } from '../../src/train/trainer.js';
import { resolvePrecision } from '../../src/train/precision.js';
import { listCheckpoints } from '../../src/train/run-checkpoint.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { readMetrics } from '../../src/train/metrics-log.js';
import { quiet, smallDataset, tempDir, toyConfig } from './helpers.js';
import { toyFamily } from './toy-model.js';

test('precision: auto is float32 on the CPU and bfloat16 on CUDA when the model supports it', () => {
  const yes = toyFamily();
  const no = { ...toyFamily(), supportsComputeDType: () => false };
  assert.equal(resolvePrecision('auto', 'cpu', yes).compute, 'float32');
  assert.equal(resolvePrecision('auto', 'cuda:0', yes).compute, 'bfloat16');
  assert.equal(resolvePrecision('auto', 'cuda:0', no).compute, 'float32');
  assert.equal(resolvePrecision('bfloat16', 'cpu', yes).compute, 'bfloat16');
  assert.throws(() => resolvePrecision('bfloat16', 'cuda:0', no), /cannot compute in bfloat16/);
  assert.throws(() => resolvePrecision('float16', 'cpu', yes), /--dtype must be auto, float32 or bfloat16/);
});

test('bfloat16 compute with float32 master weights trains like float32 and saves float32 weights', async () => {
  const data = await smallDataset();
  const losses: Record<string, number[]> = {};
  for (const dtype of ['float32', 'bfloat16']) {
    const out = await tempDir();
    const r = await train(toyConfig(data, out, { steps: 30, dtype, evalEvery: 0, checkpointEvery: 0, lr: 1e-2 }), {
      family: toyFamily(16),
      ...quiet,
    });
    r.model.dispose();
    assert.equal(r.precision.compute, dtype);
    losses[dtype] = readMetrics(join(out, 'metrics.jsonl'))
      .filter((x) => x.kind === 'train')
      .map((x) => (x as { loss: number }).loss);
    const reader = SafetensorsReader.open(join(listCheckpoints(out).pop()!.dir, 'model.safetensors'));
    try {
      for (const name of reader.names)
        assert.equal(reader.entry(name).storedDType, 'F32', `${name} is stored as float32`);
    } finally {
      reader.close();
    }
    assert.ok(r.finalEval!.loss < 4.5, `${dtype} learns: held-out loss ${r.finalEval!.loss}`);
  }
  const [f, b] = [losses.float32, losses.bfloat16];
  assert.ok(Math.abs(f[0] - b[0]) < 0.05, `first losses agree: ${f[0]} vs ${b[0]}`);
  assert.ok(b[b.length - 1] < b[0] - 0.5, 'bfloat16 loss goes down');
  assert.ok(
    Math.abs(f[f.length - 1] - b[b.length - 1]) < 0.25,
    `final losses close: ${f[f.length - 1]} vs ${b[b.length - 1]}`,
  );
});
