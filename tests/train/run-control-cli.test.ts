// Training runs as processes: SIGINT/SIGTERM stop after the current step with a checkpoint of
// it (and a second signal during that save waits for it), one trainer per --out (a live lock
// names its PID, a stale one is taken over), and runs that cannot work fail before they start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { listCheckpoints, verifyCheckpoint } from '../../src/train/run-checkpoint.js';
import { readMetrics } from '../../src/train/metrics-log.js';
import { LOCK_FILE } from '../../src/train/run-lock.js';
import { smallDataset, tempDir } from './helpers.js';

const CLI = resolve('dist/src/cli/main.js');
const TRAINING_CHILD = resolve('dist/tests/train/training-child.js');
const MODEL = JSON.stringify({ dim: 64, depth: 1, heads: 2, headDim: 32, alibiHeads: 1 });

function trainArgs(data: string, out: string, extra: string[] = []): string[] {
  return [
    '--data',
    data,
    '--out',
    out,
    '--device',
    'cpu',
    '--model',
    MODEL,
    '--steps',
    '1000',
    '--batch-size',
    '2',
    '--seq-len',
    '32',
    '--warmup',
    '3',
    '--eval-every',
    '0',
    '--final-eval-tokens',
    '64',
    '--checkpoint-every',
    '1000',
    '--keep-checkpoints',
    '0',
    '--quiet',
    ...extra,
  ];
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

class Process {
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<Exit>;
  private waiters: Array<() => void> = [];

  constructor(argv: string[]) {
    this.child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.resume();
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
      for (const wake of this.waiters) wake();
    });
    this.exited = new Promise((done, fail) => {
      this.child.on('error', fail);
      this.child.on('close', (code, signal) => {
        for (const wake of this.waiters) wake();
        done({ code, signal, stderr: this.stderr });
      });
    });
  }

  /** Resolves when stderr matches `pattern`; fails if the process ends first or after `ms`. */
  async waitFor(pattern: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = pattern.exec(this.stderr);
      if (m) return m;
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`process ended before ${pattern}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}: ${this.stderr}`);
      await new Promise<void>((wake) => {
        this.waiters.push(wake);
        setTimeout(wake, 200);
      });
      this.waiters = [];
    }
  }
}

const trainingChild = (hooks: object, args: string[]) => new Process([TRAINING_CHILD, JSON.stringify(hooks), ...args]);
const cli = (args: string[]) => new Process([CLI, ...args]).exited;

/** The step a finished run reports it stopped at. */
function stoppedAt(stderr: string): number {
  const m = /trained \d+ steps \(\d+ → (\d+)\)/.exec(stderr);
  assert.ok(m, `no summary line in: ${stderr}`);
  return Number(m[1]);
}

test(
  'SIGINT stops a run within seconds after the current step, with a checkpoint of that step that resumes',
  { timeout: 120_000 },
  async () => {
    const data = await smallDataset();
    const out = await tempDir();
    const run = trainingChild({ stepDelayMs: 200 }, trainArgs(data, out));
    await run.waitFor(/batches:/);
    await sleep(1500);
    const sent = Date.now();
    run.child.kill('SIGINT');
    const exit = await run.exited;
    const seconds = (Date.now() - sent) / 1000;
    assert.equal(exit.code, 0, exit.stderr);
    assert.ok(seconds < 10, `stopping took ${seconds.toFixed(1)} s`);
    assert.match(exit.stderr, /SIGINT: stopping after the current step/);
    assert.match(exit.stderr, /stopped by a signal/);
    const step = stoppedAt(exit.stderr);
    assert.ok(step > 0 && step < 1000, `stopped at step ${step}`);
    assert.deepEqual(
      listCheckpoints(out).map((c) => c.step),
      [step],
      'a checkpoint of the step it stopped at',
    );
    verifyCheckpoint(listCheckpoints(out)[0].dir);
    const trained = readMetrics(join(out, 'metrics.jsonl')).filter((r) => r.kind === 'train');
    assert.equal(trained[trained.length - 1].step, step, 'the metrics log ends at the same step');
    assert.equal(existsSync(join(out, LOCK_FILE)), false, 'the lock is released');

    const resumed = await cli(['train', ...trainArgs(data, out, ['--resume', '--steps', String(step + 2)])]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming .* from step ${step} `));
    assert.equal(stoppedAt(resumed.stderr), step + 2);

    // generate on the run directory passes over a damaged newest checkpoint, saying so.
    const newest = listCheckpoints(out).pop()!;
    const weights = readFileSync(join(newest.dir, 'model.safetensors'));
    weights[weights.length - 3] ^= 0xff;
    writeFileSync(join(newest.dir, 'model.safetensors'), weights);
    const generated = await cli([
      'generate',
      out,
      '--prompt',
      'the',
      '--max-tokens',
      '4',
      '--temperature',
      '0',
      '--device',
      'cpu',
    ]);
    assert.equal(generated.code, 0, generated.stderr);
    assert.match(
      generated.stderr,
      new RegExp(
        `warning: checkpoint .*step-0*${step + 2} is corrupt: model\\.safetensors does not match its SHA-256 ` +
          `checksum \\(the file was damaged\\); trying the previous one \\(step ${step}\\)`,
      ),
    );
    assert.match(generated.stderr, new RegExp(`loaded .*step-0*${step} \\(step ${step}`));
  },
);

test(
  'SIGTERM stops a run too, and a second signal while its checkpoint is written waits for it',
  { timeout: 120_000 },
  async () => {
    const data = await smallDataset();
    const out = await tempDir();
    const run = trainingChild({ stepDelayMs: 100, saveDelayMs: 1500 }, trainArgs(data, out));
    await run.waitFor(/batches:/);
    await sleep(800);
    run.child.kill('SIGTERM');
    await run.waitFor(/test: saving/);
    run.child.kill('SIGINT');
    const exit = await run.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /SIGTERM: stopping after the current step/);
    assert.match(exit.stderr, /SIGINT: the checkpoint of step \d+ is being written; waiting for it/);
    const step = stoppedAt(exit.stderr);
    assert.deepEqual(
      listCheckpoints(out).map((c) => c.step),
      [step],
    );
    verifyCheckpoint(listCheckpoints(out)[0].dir);
  },
);

test(
  "a second trainer on the same --out is refused naming the first one's PID; a dead trainer's lock is taken over",
  { timeout: 120_000 },
  async () => {
    const data = await smallDataset();
    const out = await tempDir();
    const first = trainingChild({ stepDelayMs: 200 }, trainArgs(data, out, ['--checkpoint-every', '2']));
    await first.waitFor(/checkpoint saved/);
    // --overwrite is what used to delete the running trainer's checkpoints.
    const second = await cli(['train', ...trainArgs(data, out, ['--overwrite'])]);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`is in use by another training run \\(PID ${first.child.pid}, started `));
    assert.ok(listCheckpoints(out).length > 0, "the first trainer's checkpoints are untouched");
    first.child.kill('SIGINT');
    const firstExit = await first.exited;
    assert.equal(firstExit.code, 0, firstExit.stderr);
    const step = stoppedAt(firstExit.stderr);
    assert.equal(existsSync(join(out, LOCK_FILE)), false);

    // A lock left by a process that no longer runs (as after kill -9).
    const gone = spawnSync(process.execPath, ['-e', '0']);
    assert.equal(gone.status, 0);
    writeFileSync(
      join(out, LOCK_FILE),
      JSON.stringify({
        pid: gone.pid,
        host: (await import('node:os')).hostname(),
        startedAt: '2026-01-01T00:00:00.000Z',
      }) + '\n',
    );
    const resumed = await cli(['train', ...trainArgs(data, out, ['--resume', '--steps', String(step + 1)])]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(
      resumed.stderr,
      new RegExp(`note: taking over the lock of .* left by PID ${gone.pid} .*no longer running`),
    );
    assert.equal(stoppedAt(resumed.stderr), step + 1);
    assert.equal(existsSync(join(out, LOCK_FILE)), false);
  },
);

test(
  'runs that cannot work fail at once, naming the flag: memory beyond the machine, a held-out split too short',
  { timeout: 120_000 },
  async () => {
    const data = await smallDataset();
    const out = await tempDir();
    // Logits alone take 8 bytes × 257 (byte vocabulary) per token: twice the machine's RAM.
    const seqLen = 1024;
    const batch = Math.ceil((2 * totalmem()) / (8 * 257 * seqLen));
    const started = Date.now();
    const big = await cli([
      'train',
      ...trainArgs(data, join(out, 'big'), [
        '--batch-size',
        String(batch),
        '--seq-len',
        String(seqLen),
        '--steps',
        '3',
      ]),
    ]);
    assert.equal(big.code, 1, big.stderr);
    assert.match(
      big.stderr,
      new RegExp(
        "this run needs at least .* but this machine's RAM is .*; the largest part is the .*: " +
          'lower --batch-size, --seq-len',
      ),
    );
    assert.ok(Date.now() - started < 30_000, 'refused before training');
    assert.equal(existsSync(join(out, 'big', 'checkpoints')), false);
    assert.equal(existsSync(join(out, 'big', 'metrics.jsonl')), false);

    const short = await cli(['train', ...trainArgs(data, join(out, 'short'), ['--seq-len', '100000', '--steps', '3'])]);
    assert.equal(short.code, 1, short.stderr);
    assert.match(
      short.stderr,
      new RegExp(
        String.raw`the held-out split has \d+ tokens, fewer than the 100001 \(--seq-len \+ 1\) ` +
          'one evaluation row needs; tokenize the dataset with a larger --val-fraction, or lower --seq-len',
      ),
    );
    assert.equal(existsSync(join(out, 'short', 'metrics.jsonl')), false, 'no step was taken');
  },
);
