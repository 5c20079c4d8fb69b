// Repeatability of training on the CUDA engine, end to end through `andromeda train`: two identical runs give
// byte-identical weights, and resuming from a mid-run checkpoint reproduces the straight run's final checkpoint.
// The model uses every Andromeda feature that picks a different kernel (MQA with the per-head key scale of qk-norm,
// ALiBi on some heads, rotary + xPos, token shift), trained in bfloat16 with float32 master weights, both on one
// packed rows with document masks (the default; segment-masked attention) and with rows as unbroken streams. The
// README's "Repeatability" section states what these tests establish.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gpuTest } from './harness.js';

const CLI = resolve('dist/src/cli/main.js');
const MODEL = JSON.stringify({
  dim: 128,
  depth: 2,
  heads: 4,
  headDim: 32,
  kvHeads: 1,
  alibiHeads: 2,
  qkNorm: true,
  qkNormDimScale: true,
  shiftTokens: 1,
  rotary: { dim: 16, xpos: true },
});

function train(out: string, extra: string[]): void {
  const argv = [
    CLI,
    'train',
    '--out',
    out,
    '--device',
    'cuda',
    '--model',
    MODEL,
    '--steps',
    '8',
    '--batch-size',
    '4',
    '--seq-len',
    '128',
    '--lr',
    '0.003',
    '--warmup',
    '2',
    '--eval-every',
    '4',
    '--eval-tokens',
    '512',
    '--final-eval-tokens',
    '512',
    '--checkpoint-every',
    '4',
    '--keep-checkpoints',
    '0',
    '--quiet',
    ...extra,
  ];
  const r = spawnSync(process.execPath, argv, { encoding: 'utf8' });
  assert.equal(r.status, 0, `train ${extra.join(' ')} failed:\n${r.stderr}`);
}

/** The checkpoint directory of `step` in a run directory. */
function checkpointOf(out: string, step: number): string {
  const root = join(out, 'checkpoints');
  const name = readdirSync(root).find((n) => /^step-\d+$/.test(n) && Number(n.slice(5)) === step);
  assert.ok(name, `${out} has no checkpoint of step ${step}`);
  return join(root, name);
}

function sameBytes(a: string, b: string, what: string): void {
  for (const file of ['model.safetensors', 'optimizer.safetensors']) {
    const pa = join(a, file);
    const pb = join(b, file);
    assert.ok(existsSync(pa) && existsSync(pb), `${what}: ${file} missing`);
    assert.ok(readFileSync(pa).equals(readFileSync(pb)), `${what}: ${file} differs`);
  }
}

for (const [name, extra] of [
  ['packed documents with segment masks', ['--segments', 'true']],
  ['rows as unbroken streams', ['--segments', 'false']],
] as const) {
  gpuTest(`cuda training (${name}): identical runs are byte-identical, and resume reproduces the straight run`, () => {
    const root = mkdtempSync(join(tmpdir(), 'andromeda-gpu-repeat-'));
    try {
      const first = join(root, 'first');
      const second = join(root, 'second');
      train(first, [...extra]);
      train(second, [...extra]);
      sameBytes(checkpointOf(first, 8), checkpointOf(second, 8), 'two identical runs');

      // Resume from the step-4 checkpoint of a copy whose later checkpoint is removed.
      const resumed = join(root, 'resumed');
      cpSync(first, resumed, { recursive: true });
      rmSync(checkpointOf(resumed, 8), { recursive: true });
      train(resumed, [...extra, '--resume']);
      sameBytes(checkpointOf(resumed, 8), checkpointOf(first, 8), 'resume from step 4');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
