import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../../src/train/trainer.js';
import {
  CheckpointError,
  listCheckpoints,
  loadCheckpoint,
  resolveCheckpointDir,
  saveCheckpoint,
  verifyCheckpoint,
} from '../../src/train/run-checkpoint.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import { readMetrics } from '../../src/train/metrics-log.js';
import { quiet, smallDataset, tempDir, toyConfig } from './helpers.js';
import { ToyModel, toyFamily } from './toy-model.js';

async function trainedRun(steps = 6) {
  const data = await smallDataset();
  const out = await tempDir();
  const result = await train(toyConfig(data, out, { steps, evalEvery: 0, checkpointEvery: steps }), {
    family: toyFamily(8),
    ...quiet,
    skipFinalEval: true,
  });
  result.model.dispose();
  return { data, out, dir: listCheckpoints(out)[0].dir };
}

test('a checkpoint holds weights, optimizer, tokenizer, trainer state and a checksummed manifest', async () => {
  const { dir } = await trainedRun();
  for (const f of [
    'config.json',
    'model.safetensors',
    'optimizer.safetensors',
    'tokenizer.json',
    'trainer.json',
    'checkpoint.json',
  ])
    assert.ok(existsSync(join(dir, f)), f);
  const manifest = verifyCheckpoint(dir);
  assert.equal(manifest.step, 6);
  const trainer = JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8'));
  assert.equal(trainer.step, 6);
  assert.equal(trainer.loader.step, 6);
  assert.equal(trainer.config.seqLen, 16);
  assert.equal(trainer.rng.default.length, 5);
});

test('a save that fails midway leaves the previous checkpoint intact and no partial directory', async () => {
  const { out, dir } = await trainedRun();
  const before = readFileSync(join(dir, 'model.safetensors'));
  const model = new ToyModel({ vocabSize: 257, dim: 8 }, 99);
  try {
    for (const failAfter of ['config.json', 'model.safetensors', 'trainer.json', 'checkpoint.json']) {
      for (const step of [6, 12]) {
        const onFileWritten = (file: string) => {
          if (file === failAfter) throw new Error(`simulated crash after ${file}`);
        };
        await assert.rejects(
          saveCheckpoint(
            out,
            {
              step,
              modelConfig: { vocabSize: 257 },
              weights: model.stateDict(),
              tokenizer: new ByteTokenizer(),
              trainer: {},
            },
            { onFileWritten },
          ),
          /simulated crash/,
        );
        assert.deepEqual(
          listCheckpoints(out).map((c) => c.step),
          [6],
          `after a crash writing ${failAfter} of step ${step}`,
        );
        assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), before, 'the good checkpoint is untouched');
        verifyCheckpoint(dir);
        assert.deepEqual(
          readdirSync(join(out, 'checkpoints')).filter((n) => n.startsWith('.')),
          [],
        );
      }
    }
  } finally {
    model.dispose();
  }
});

test('a temporary directory left by a killed process is never taken for a checkpoint, and is cleaned up', async () => {
  const { out, dir } = await trainedRun();
  const partial = join(out, 'checkpoints', '.tmp-step-000012-1234-5678');
  mkdirSync(partial);
  writeFileSync(join(partial, 'model.safetensors'), 'partial');
  // also a directory with a final-looking name but no manifest (not produced by us, but be safe)
  mkdirSync(join(out, 'checkpoints', 'step-000099'));
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [6],
  );
  assert.equal(resolveCheckpointDir(out), dir);
  const model = new ToyModel({ vocabSize: 257, dim: 8 }, 1);
  try {
    await saveCheckpoint(
      out,
      {
        step: 7,
        modelConfig: { vocabSize: 257 },
        weights: model.stateDict(),
        tokenizer: new ByteTokenizer(),
        trainer: {},
      },
      { keep: 5 },
    );
  } finally {
    model.dispose();
  }
  assert.equal(existsSync(partial), false);
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [6, 7],
  );
});

test('old checkpoints are pruned to keepCheckpoints', async () => {
  const data = await smallDataset();
  const out = await tempDir();
  const r = await train(toyConfig(data, out, { steps: 8, evalEvery: 0, checkpointEvery: 2, keepCheckpoints: 2 }), {
    family: toyFamily(8),
    ...quiet,
    skipFinalEval: true,
  });
  r.model.dispose();
  assert.deepEqual(
    listCheckpoints(out).map((c) => c.step),
    [6, 8],
  );
});

test('a damaged checkpoint gives a clear error', async () => {
  const { dir } = await trainedRun();
  const copy = async (name: string) => {
    const d = join(await tempDir(), name);
    mkdirSync(d);
    for (const f of readdirSync(dir)) writeFileSync(join(d, f), readFileSync(join(dir, f)));
    return d;
  };
  const flipped = await copy('flipped');
  const bytes = readFileSync(join(flipped, 'model.safetensors'));
  bytes[bytes.length - 3] ^= 0xff;
  writeFileSync(join(flipped, 'model.safetensors'), bytes);
  await assert.rejects(
    loadCheckpoint(flipped),
    (e: unknown) =>
      e instanceof CheckpointError &&
      /corrupt: model\.safetensors does not match its SHA-256/.test((e as Error).message),
  );

  const truncated = await copy('truncated');
  truncateSync(join(truncated, 'optimizer.safetensors'), 10);
  await assert.rejects(
    loadCheckpoint(truncated),
    /corrupt: optimizer\.safetensors has 10 bytes, expected \d+ \(truncated/,
  );

  const noManifest = await copy('no-manifest');
  rmSync(join(noManifest, 'checkpoint.json'));
  writeFileSync(join(noManifest, 'model.safetensors'), 'garbage');
  await assert.rejects(
    loadCheckpoint(noManifest),
    (e: unknown) => e instanceof CheckpointError && /corrupt/.test((e as Error).message),
  );

  const badJson = await copy('bad-json');
  writeFileSync(join(badJson, 'checkpoint.json'), '{"format": "andromeda-che');
  await assert.rejects(loadCheckpoint(badJson), /checkpoint\.json is not valid JSON/);

  // A manifest that vouches for nothing (or not for every core file) vouches for no checkpoint.
  const emptyManifest = await copy('empty-manifest');
  const manifest = JSON.parse(readFileSync(join(emptyManifest, 'checkpoint.json'), 'utf8'));
  writeFileSync(join(emptyManifest, 'checkpoint.json'), JSON.stringify({ ...manifest, files: {} }));
  const damaged = readFileSync(join(emptyManifest, 'model.safetensors'));
  damaged[damaged.length - 3] ^= 0xff;
  writeFileSync(join(emptyManifest, 'model.safetensors'), damaged);
  await assert.rejects(
    loadCheckpoint(emptyManifest),
    /corrupt: checkpoint\.json does not list config\.json, so nothing vouches for it/,
  );
  const partialManifest = await copy('partial-manifest');
  delete manifest.files['optimizer.safetensors'];
  writeFileSync(join(partialManifest, 'checkpoint.json'), JSON.stringify(manifest));
  await assert.rejects(loadCheckpoint(partialManifest), /checkpoint\.json does not list optimizer\.safetensors/);
  const wrongStep = join(await tempDir(), 'step-000007');
  mkdirSync(wrongStep);
  for (const f of readdirSync(dir)) writeFileSync(join(wrongStep, f), readFileSync(join(dir, f)));
  await assert.rejects(loadCheckpoint(wrongStep), /checkpoint\.json is for step 6, not the directory's step 7/);

  await assert.rejects(loadCheckpoint(join(dir, 'nope')), /checkpoint not found/);
  await assert.rejects(loadCheckpoint(join(dir, 'config.json')), /expected a directory/);
  await assert.rejects(loadCheckpoint(await tempDir()), /holds no checkpoint/);
});

test('resume continues exactly: 12 steps straight = 6 steps, stop, resume 6 (in process, toy model)', async () => {
  const data = await smallDataset();
  const straight = await tempDir();
  const cfg = (out: string) => toyConfig(data, out, { steps: 12, evalEvery: 4, checkpointEvery: 0, gradAccum: 2 });
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
  assert.equal(b1.stoppedBy, 'signal');
  const b2 = await train(cfg(split), { family: toyFamily(8), ...quiet, resume: true, skipFinalEval: true });
  b2.model.dispose();
  assert.equal(b2.startStep, 6);
  assert.equal(b2.step, 12);

  const last = (out: string) => listCheckpoints(out).pop()!.dir;
  assert.deepEqual(
    readFileSync(join(last(split), 'model.safetensors')),
    readFileSync(join(last(straight), 'model.safetensors')),
    'weights are bit-identical',
  );
  assert.deepEqual(
    readFileSync(join(last(split), 'optimizer.safetensors')),
    readFileSync(join(last(straight), 'optimizer.safetensors')),
    'optimizer state is bit-identical',
  );
  const strip = (out: string) =>
    readMetrics(join(out, 'metrics.jsonl')).map((r) =>
      r.kind === 'train' ? { step: r.step, loss: r.loss, lr: r.lr, g: r.gradNorm, t: r.totalTokens } : r,
    );
  assert.deepEqual(strip(split), strip(straight), 'the metrics log describes the same run');
});

test(
  'starting a new run over an old one is refused unless --overwrite; ' + 'resuming changed settings is refused',
  async () => {
    const { data, out } = await trainedRun();
    await assert.rejects(
      train(toyConfig(data, out, { steps: 6 }), { family: toyFamily(8), ...quiet }),
      /already holds checkpoints.*--resume.*--overwrite/,
    );
    await assert.rejects(
      train(toyConfig(data, out, { steps: 8, seqLen: 32 }), {
        family: toyFamily(8),
        ...quiet,
        resume: true,
        explicit: { seqLen: 32, steps: 8 },
      }),
      /cannot change: seqLen \(checkpoint: 16, given: 32\)/,
    );
    const more = await train(toyConfig(data, out), {
      family: toyFamily(8),
      ...quiet,
      resume: true,
      explicit: { steps: 8 },
      skipFinalEval: true,
    });
    more.model.dispose();
    assert.equal(more.step, 8);
    const fresh = await train(toyConfig(data, out, { steps: 2, checkpointEvery: 0 }), {
      family: toyFamily(8),
      ...quiet,
      overwrite: true,
      skipFinalEval: true,
    });
    fresh.model.dispose();
    assert.deepEqual(
      listCheckpoints(out).map((c) => c.step),
      [2],
    );
    await assert.rejects(
      train(toyConfig(data, await tempDir()), { family: toyFamily(8), ...quiet, resume: true }),
      /has no checkpoint to resume from/,
    );
  },
);
