// Repeatability of training on the CUDA engine, end to end through `andromeda train`. The CUDA attention backward
// accumulates dQ (and, when query heads share a key/value head, dK/dV and the key-scale gradient) with float atomics
// across tiles, as FlashAttention's does, so two identical runs may differ in the last bits; every other kernel has a
// fixed order. What must hold: a run resumed from a mid-run checkpoint continues from exactly the saved state, so it
// lands as close to the straight run as a second straight run does. The model uses every Andromeda feature that picks
// a different kernel (MQA with the per-head key scale of qk-norm, ALiBi on some heads, rotary + xPos, token shift),
// in bfloat16 with float32 master weights, on packed documents (segment masks) and on unbroken rows. The README's
// "Repeatability" lines state what these tests establish.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gpuTest } from './harness.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';

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

/** Largest |a − b| over every float32 weight of two model files, and the largest |a|. */
function weightDistance(a: string, b: string): { diff: number; scale: number; identical: boolean } {
  const ra = SafetensorsReader.open(join(a, 'model.safetensors'));
  const rb = SafetensorsReader.open(join(b, 'model.safetensors'));
  try {
    assert.deepEqual(ra.names, rb.names);
    let diff = 0;
    let scale = 0;
    for (const name of ra.names) {
      const x = new Float32Array(new Uint8Array(ra.readBytes(name)).buffer);
      const y = new Float32Array(new Uint8Array(rb.readBytes(name)).buffer);
      for (let i = 0; i < x.length; i++) {
        diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
        scale = Math.max(scale, Math.abs(x[i]!));
      }
    }
    const identical = readFileSync(join(a, 'model.safetensors')).equals(readFileSync(join(b, 'model.safetensors')));
    return { diff, scale, identical };
  } finally {
    ra.close();
    rb.close();
  }
}

for (const [name, extra] of [
  ['packed documents with segment masks', ['--segments', 'true']],
  ['rows as unbroken streams', ['--segments', 'false']],
] as const) {
  gpuTest(`cuda training (${name}): a resumed run is as close to the straight run as a second straight run`, () => {
    const root = mkdtempSync(join(tmpdir(), 'andromeda-gpu-repeat-'));
    try {
      const first = join(root, 'first');
      const second = join(root, 'second');
      train(first, [...extra]);
      train(second, [...extra]);
      const twoRuns = weightDistance(checkpointOf(first, 8), checkpointOf(second, 8));
      assert.ok(twoRuns.scale > 0 && Number.isFinite(twoRuns.diff), 'the runs produced finite weights');
      // Resume from the step-4 checkpoint of a copy whose later checkpoint is removed.
      const resumed = join(root, 'resumed');
      cpSync(first, resumed, { recursive: true });
      rmSync(checkpointOf(resumed, 8), { recursive: true });
      train(resumed, [...extra, '--resume']);
      const afterResume = weightDistance(checkpointOf(resumed, 8), checkpointOf(first, 8));
      console.log(
        `# ${name}: two identical runs ${twoRuns.identical ? 'byte-identical' : `differ by ${twoRuns.diff}`}; ` +
          `resumed vs straight ${afterResume.identical ? 'byte-identical' : `differ by ${afterResume.diff}`} ` +
          `(largest weight ${twoRuns.scale})`,
      );
      // Exact state on resume: no further from the straight run than run-to-run variation allows (with room for
      // the variation of a third run). Two straight runs that agree to the bit do not make the kernels
      // deterministic — the float atomics' order varies from run to run and sometimes repeats (stop 21: two
      // straight runs byte-identical, the resumed one 1.5e-3 away; earlier stops: straight runs 2.8e-3 apart) — so
      // the variation is taken as at least 1e-3 of the largest weight, below what these runs have shown. The
      // exact-resume check, bit for bit, is the CPU engine's (tests/train/resume-cli.test.ts).
      const spread = Math.max(twoRuns.diff, 1e-3 * twoRuns.scale);
      assert.ok(
        afterResume.diff <= 4 * spread,
        `resumed run is ${afterResume.diff} from the straight run; two straight runs differ by ${twoRuns.diff}`,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
