// The resume guarantee end to end: `andromeda train` in a child process, killed with SIGKILL right
// after its step-10 checkpoint is written, then `--resume`d, ends with weights and optimizer state
// bit-identical to an uninterrupted 20-step run (CPU engine, the real Andromeda model).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listCheckpoints } from '../../src/train/run-checkpoint.js';
import { readMetrics } from '../../src/train/metrics-log.js';
import { smallDataset, tempDir } from './helpers.js';

const CLI = resolve('dist/src/cli/main.js');
/** `andromeda train` with test hooks (see training-child.ts). */
const TRAINING_CHILD = resolve('dist/tests/train/training-child.js');
const MODEL = JSON.stringify({ dim: 64, depth: 1, heads: 2, headDim: 32, alibiHeads: 1 });

function args(data: string, out: string, extra: string[] = []): string[] {
  return [
    CLI,
    'train',
    '--data',
    data,
    '--out',
    out,
    '--device',
    'cpu',
    '--model',
    MODEL,
    '--steps',
    '20',
    '--batch-size',
    '4',
    '--seq-len',
    '32',
    '--lr',
    '0.003',
    '--warmup',
    '3',
    '--eval-every',
    '5',
    '--eval-tokens',
    '128',
    '--final-eval-tokens',
    '256',
    '--checkpoint-every',
    '10',
    '--keep-checkpoints',
    '0',
    '--quiet',
    ...extra,
  ];
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs the CLI; when `killAt` is given, SIGKILLs the child as soon as it reports that checkpoint. */
function run(argv: string[], killAt?: number): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (killAt !== undefined && new RegExp(`checkpoint saved: .*step-0*${killAt} \\(step ${killAt}\\)`).test(stderr))
        child.kill('SIGKILL');
    });
    child.stdout.resume();
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stderr }));
  });
}

test(
  'train 20 steps straight == train, kill -9 after the step-10 checkpoint, resume: bit-identical weights',
  { timeout: 120_000 },
  async () => {
    const data = await smallDataset();
    const straight = await tempDir();
    const a = await run(args(data, straight));
    assert.equal(a.code, 0, a.stderr);

    const killed = await tempDir();
    // Slow the steps down so the kill lands while training is still running.
    const b1 = await run([TRAINING_CHILD, JSON.stringify({ stepDelayMs: 300 }), ...args(data, killed).slice(2)], 10);
    assert.equal(b1.signal, 'SIGKILL', `the child should have been killed, it exited with ${b1.code}: ${b1.stderr}`);
    assert.deepEqual(
      listCheckpoints(killed).map((c) => c.step),
      [10],
      'only the step-10 checkpoint exists after the kill',
    );
    const b2 = await run(args(data, killed, ['--resume']));
    assert.equal(b2.code, 0, b2.stderr);
    assert.match(b2.stderr, /resuming .* from step 10/);

    const final = (out: string) => listCheckpoints(out).find((c) => c.step === 20)!.dir;
    for (const file of ['model.safetensors', 'optimizer.safetensors']) {
      assert.ok(
        readFileSync(join(final(killed), file)).equals(readFileSync(join(final(straight), file))),
        `${file} differs after resume`,
      );
    }
    const losses = (out: string) =>
      readMetrics(join(out, 'metrics.jsonl')).map((r) =>
        r.kind === 'train' ? [r.step, r.loss, r.lr] : r.kind === 'eval' ? [r.step, r.loss] : [r.step],
      );
    assert.deepEqual(losses(killed), losses(straight), 'the metrics log of the resumed run matches the straight run');

    // generate streams text from the run directory; the cache does not change greedy output.
    const gen = (extra: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
        const child = spawn(process.execPath, [
          CLI,
          'generate',
          killed,
          '--prompt',
          'the whale',
          '--max-tokens',
          '24',
          '--temperature',
          '0',
          '--device',
          'cpu',
          ...extra,
        ]);
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c));
        child.stderr.on('data', (c: Buffer) => (stderr += c));
        child.on('close', (code) => done({ code, stdout, stderr }));
      });
    const cached = await gen([]);
    assert.equal(cached.code, 0, cached.stderr);
    assert.ok(cached.stdout.startsWith('the whale'));
    assert.match(cached.stderr, /loaded .*step-000020 \(step 20/);
    assert.match(cached.stderr, /KV cache/);
    const uncached = await gen(['--no-cache']);
    assert.equal(uncached.stdout, cached.stdout);
    const bad = await gen(['--top-p', '2']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--top-p must be a number in \(0, 1\]/);
  },
);

test('train CLI: clear errors for bad flags, files and checkpoints', { timeout: 60_000 }, async () => {
  const out = await tempDir();
  const cases: Array<[string[], RegExp]> = [
    [['--steps', 'ten'], /--steps must be a positive integer, got "ten"/],
    [['--steps', '1e20'], /--steps must be at most 1000000000, got "1e20"/],
    [['--grad-accum', '1e7'], /--grad-accum must be at most 1000000/],
    [
      ['--steps', '3', '--batch-size', '1000000000', '--seq-len', '32'],
      /--batch-size 1000000000 × --seq-len 32 = 32000000000 tokens exceeds the limit/,
    ],
    [['--lr=-1'], /--lr must be a positive number/],
    [['--device', 'tpu'], /device must be auto, cpu, cuda or cuda:N/],
    [['--preset', 'huge', '--steps', '1'], /unknown model preset 'huge'/],
    [['--config', join(out, 'missing.json')], /config file not found/],
    [['--data', join(out, 'nope')], /--data .*nope: no such directory/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['--resume'], /has no checkpoint to resume from/],
  ];
  for (const [extra, pattern] of cases) {
    const r = await run([CLI, 'train', '--out', join(out, 'run'), '--device', 'cpu', '--quiet', ...extra]);
    assert.equal(r.code, 1, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern, extra.join(' '));
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  }
  const gen = await run([CLI, 'generate', join(out, 'nothing-here')]);
  assert.equal(gen.code, 1);
  assert.match(gen.stderr, /checkpoint not found/);
  const help = await run([CLI, 'train', '--help']);
  assert.equal(help.code, 0);
});
