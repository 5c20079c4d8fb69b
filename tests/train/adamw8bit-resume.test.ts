// `--optimizer adamw8bit` in training: a run stopped and resumed from its checkpoint ends bit-identical to a
// straight run (weights and the 8-bit optimizer state), the checkpoint holds the packed codes as int32 and the
// absmax values, and the optimizer cannot be switched on resume or named wrongly; the memory plan counts its state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../../src/train/trainer.js';
import { listCheckpoints } from '../../src/train/run-checkpoint.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { validateConfig } from '../../src/train/config.js';
import { parseTrainArgs } from '../../src/cli/commands/train.js';
import { planTrainingMemory } from '../../src/train/memory-plan.js';
import { quiet, smallDataset, tempDir, toyConfig } from './helpers.js';
import { toyFamily } from './toy-model.js';

test('adamw8bit: 12 steps straight = 6 steps, stop, resume 6, bit for bit (in process, toy model)', async () => {
  const data = await smallDataset();
  const cfg = (out: string) =>
    toyConfig(data, out, { steps: 12, evalEvery: 4, checkpointEvery: 0, gradAccum: 2, optimizer: 'adamw8bit' });
  const straight = await tempDir();
  const a = await train(cfg(straight), { family: toyFamily(8), ...quiet, skipFinalEval: true });
  a.model.dispose();

  const split = await tempDir();
  const stop = new AbortController();
  const b1 = await train(cfg(split), {
    family: toyFamily(8),
    ...quiet,
    signal: stop.signal,
    onStep: (r) => {
      if (r.step === 6) stop.abort();
    },
  });
  b1.model.dispose();
  assert.equal(b1.step, 6);
  const b2 = await train(cfg(split), { family: toyFamily(8), ...quiet, resume: true, skipFinalEval: true });
  b2.model.dispose();
  assert.equal(b2.startStep, 6);
  assert.equal(b2.step, 12);

  const last = (out: string) => listCheckpoints(out).pop()!.dir;
  for (const file of ['model.safetensors', 'optimizer.safetensors']) {
    assert.ok(
      readFileSync(join(last(split), file)).equals(readFileSync(join(last(straight), file))),
      `${file} differs after resume`,
    );
  }

  const saved = readSafetensors(join(last(straight), 'optimizer.safetensors'), { device: 'cpu' });
  try {
    assert.equal(saved.metadata.kind, 'adamw8bit');
    const kinds = new Set([...saved.tensors.keys()].map((k) => k.slice(k.lastIndexOf('.') + 1)));
    assert.deepEqual([...kinds].sort(), ['mAbsmax', 'mCodes', 'vAbsmax', 'vCodes']);
    for (const [key, t] of saved.tensors) {
      assert.equal(t.dtype, key.endsWith('Codes') ? 'int32' : 'float32', key);
      if (key.endsWith('Absmax'))
        assert.ok(
          (t.toArray() as Float32Array).some((x) => x > 0),
          `${key} is all zero`,
        );
    }
  } finally {
    for (const t of saved.tensors.values()) t.dispose();
  }

  await assert.rejects(
    train(cfg(split), {
      family: toyFamily(8),
      ...quiet,
      resume: true,
      explicit: { optimizer: 'adamw', steps: 14 },
    }),
    /cannot change: optimizer \(checkpoint: "adamw8bit", given: "adamw"\)/,
  );
});

test('--optimizer: parsed from the command line, and an unknown name is refused naming the choices', () => {
  assert.equal(parseTrainArgs(['--optimizer', 'adamw8bit']).config.optimizer, 'adamw8bit');
  assert.equal(parseTrainArgs([]).config.optimizer, 'adamw');
  const base = parseTrainArgs([]).config;
  assert.throws(
    () => validateConfig({ ...base, optimizer: 'adam8' }),
    /optimizer must be adamw or adamw8bit, got "adam8"/,
  );
});

test('the memory plan counts 8-bit moments at 2.03 bytes per parameter instead of 8', () => {
  const parameterCount = 1_000_000;
  const input = {
    parameterCount,
    modelConfig: {},
    vocabSize: 256,
    config: { batchSize: 1, seqLen: 16, activationCheckpointing: false },
    computeBytes: 4,
    mixedPrecision: false,
  };
  const adamw = planTrainingMemory({ ...input, config: { ...input.config, optimizer: 'adamw' } });
  const eightBit = planTrainingMemory({ ...input, config: { ...input.config, optimizer: 'adamw8bit' } });
  assert.equal(adamw.parts[0]!.bytes, 16 * parameterCount);
  assert.equal(eightBit.parts[0]!.bytes, (10 + 8 / 256) * parameterCount);
});
