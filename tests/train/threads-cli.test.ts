// `andromeda train --device cpu` is repeatable at any thread count: identical 5-step runs of the tiny
// preset give byte-identical weights with ANDROMEDA_THREADS=2 (run to run) and with 1 and 3 threads,
// and a run killed with SIGKILL and resumed (with 2 or with 3 threads) ends where the straight run does.
// And ANDROMEDA_THREADS / ANDROMEDA_CPU_ISA are validated: a clear error naming the variable, never a
// crash or a silent default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listCheckpoints } from '../../src/train/run-checkpoint.js';
import { smallDataset, tempDir } from './helpers.js';

const CLI = resolve('dist/src/cli/main.js');
/** `andromeda train` with the trainer's test hooks (training-child.ts). */
const TRAINING_CHILD = resolve('dist/tests/train/training-child.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs the CLI with ANDROMEDA_THREADS=threads; with `killAt`, SIGKILLs it once that checkpoint is reported;
 * with `hooks`, runs `train` (argv[0]) through training-child.ts with those test hooks.
 */
function run(
  argv: string[],
  threads: string,
  env: NodeJS.ProcessEnv = {},
  killAt?: number,
  hooks?: object,
): Promise<Run> {
  return new Promise((done, fail) => {
    const program = hooks ? [TRAINING_CHILD, JSON.stringify(hooks), ...argv.slice(1)] : [CLI, ...argv];
    const child = spawn(process.execPath, program, {
      env: { ...process.env, ANDROMEDA_THREADS: threads, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (killAt !== undefined && new RegExp(`checkpoint saved: .*step-0*${killAt} \\(step ${killAt}\\)`).test(stderr))
        child.kill('SIGKILL');
    });
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code, signal, stderr }));
  });
}

async function trainWeights(data: string, threads: string): Promise<Buffer> {
  const out = await tempDir();
  const r = await run(
    [
      'train',
      '--data',
      data,
      '--out',
      out,
      '--device',
      'cpu',
      '--preset',
      'tiny',
      '--steps',
      '5',
      '--batch-size',
      '8',
      '--seq-len',
      '128',
      '--eval-every',
      '0',
      '--eval-tokens',
      '256',
      '--final-eval-tokens',
      '256',
      '--quiet',
    ],
    threads,
  );
  assert.equal(r.code, 0, r.stderr);
  const last = listCheckpoints(out).find((c) => c.step === 5);
  assert.ok(last, `no step-5 checkpoint in ${out}`);
  return readFileSync(join(last.dir, 'model.safetensors'));
}

test(
  'train --device cpu: byte-identical weights run to run with 2 threads, and with 1 and 3',
  { timeout: 180_000 },
  async () => {
    const data = await smallDataset();
    const first = await trainWeights(data, '2');
    assert.ok((await trainWeights(data, '2')).equals(first), 'two identical runs with ANDROMEDA_THREADS=2 differ');
    for (const threads of ['1', '3']) {
      assert.ok(
        (await trainWeights(data, threads)).equals(first),
        `ANDROMEDA_THREADS=${threads} gives other weights than 2 threads`,
      );
    }
  },
);

test('ANDROMEDA_THREADS must be an integer from 1 to 1024 (train and generate)', { timeout: 60_000 }, async () => {
  const data = await smallDataset();
  const out = await tempDir();
  const trainArgs = [
    'train',
    '--data',
    data,
    '--out',
    out,
    '--device',
    'cpu',
    '--preset',
    'tiny',
    '--steps',
    '1',
    '--seq-len',
    '32',
    '--quiet',
  ];
  const ok = await run(trainArgs, '2');
  assert.equal(ok.code, 0, ok.stderr);
  for (const bad of ['100000', '-5', 'abc', '0', '2.5', '1025']) {
    const expected = new RegExp(
      `ANDROMEDA_THREADS must be an integer from 1 to 1024, got "${bad.replace('.', '\\.')}"`,
    );
    for (const argv of [
      ['generate', out, '--prompt', 'the', '--max-tokens', '2', '--device', 'cpu'],
      [...trainArgs, '--resume'],
    ]) {
      const r = await run(argv, bad);
      assert.equal(r.code, 1, `${argv[0]} with ANDROMEDA_THREADS=${bad}: ${r.stderr}`);
      assert.match(r.stderr, expected, `${argv[0]} with ANDROMEDA_THREADS=${bad}`);
      assert.doesNotMatch(r.stderr, /corrupt|^\s+at /m, 'names the variable, not the checkpoint; no stack trace');
    }
  }
});

test('ANDROMEDA_CPU_ISA must name an instruction set', { timeout: 60_000 }, async () => {
  const data = await smallDataset();
  const out = await tempDir();
  const argv = [
    'train',
    '--data',
    data,
    '--out',
    out,
    '--device',
    'cpu',
    '--preset',
    'tiny',
    '--steps',
    '1',
    '--seq-len',
    '32',
    '--quiet',
  ];
  const bad = await run(argv, '2', { ANDROMEDA_CPU_ISA: 'sse9' });
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /ANDROMEDA_CPU_ISA must be generic, avx2, avx512, got "sse9"/);
  const capped = await run(argv, '2', { ANDROMEDA_CPU_ISA: 'generic' });
  assert.equal(capped.code, 0, capped.stderr);
});

test(
  'kill -9 + resume with 2 threads, and resuming with 3, match the straight 2-thread run byte for byte',
  { timeout: 180_000 },
  async () => {
    const data = await smallDataset();
    const argv = (out: string, extra: string[] = []) => [
      'train',
      '--data',
      data,
      '--out',
      out,
      '--device',
      'cpu',
      '--preset',
      'tiny',
      '--steps',
      '8',
      '--batch-size',
      '4',
      '--seq-len',
      '64',
      '--eval-every',
      '0',
      '--eval-tokens',
      '128',
      '--final-eval-tokens',
      '128',
      '--checkpoint-every',
      '4',
      '--keep-checkpoints',
      '0',
      '--quiet',
      ...extra,
    ];
    const straight = await tempDir();
    const a = await run(argv(straight), '2');
    assert.equal(a.code, 0, a.stderr);
    const final = (out: string) => listCheckpoints(out).find((c) => c.step === 8)!.dir;
    for (const resumeThreads of ['2', '3']) {
      const killed = await tempDir();
      // Slowed steps so that the kill lands right after the step-4 checkpoint, while training still runs.
      const b1 = await run(argv(killed), '2', {}, 4, { stepDelayMs: 300 });
      assert.equal(b1.signal, 'SIGKILL', `the run should have been killed: ${b1.stderr}`);
      assert.deepEqual(
        listCheckpoints(killed).map((c) => c.step),
        [4],
      );
      const b2 = await run(argv(killed, ['--resume']), resumeThreads);
      assert.equal(b2.code, 0, b2.stderr);
      for (const file of ['model.safetensors', 'optimizer.safetensors']) {
        assert.ok(
          readFileSync(join(final(killed), file)).equals(readFileSync(join(final(straight), file))),
          `${file} after kill + resume with ${resumeThreads} threads differs from the straight run`,
        );
      }
    }
  },
);
