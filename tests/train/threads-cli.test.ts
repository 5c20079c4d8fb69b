// `andromeda train --device cpu` is repeatable at any thread count: identical 5-step runs of the tiny
// preset give byte-identical weights with ANDROMEDA_THREADS=2 (run to run) and with 1 and 3 threads.
// And ANDROMEDA_THREADS / ANDROMEDA_CPU_ISA are validated: a clear error naming the variable, never a
// crash or a silent default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { smallDataset, tempDir } from './helpers.js';

const CLI = resolve('dist/src/cli/main.js');

function run(argv: string[], threads: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...argv], { env: { ...process.env, ANDROMEDA_THREADS: threads, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stderr }));
  });
}

async function trainWeights(data: string, threads: string): Promise<Buffer> {
  const out = await tempDir();
  const r = await run(['train', '--data', data, '--out', out, '--device', 'cpu', '--preset', 'tiny', '--steps', '5', '--batch-size', '8',
    '--seq-len', '128', '--eval-every', '0', '--eval-tokens', '256', '--final-eval-tokens', '256', '--quiet'], threads);
  assert.equal(r.code, 0, r.stderr);
  const last = listCheckpoints(out).find((c) => c.step === 5);
  assert.ok(last, `no step-5 checkpoint in ${out}`);
  return readFileSync(join(last.dir, 'model.safetensors'));
}

test('train --device cpu: byte-identical weights run to run with 2 threads, and with 1 and 3', { timeout: 180_000 }, async () => {
  const data = await smallDataset();
  const first = await trainWeights(data, '2');
  assert.ok((await trainWeights(data, '2')).equals(first), 'two identical runs with ANDROMEDA_THREADS=2 differ');
  for (const threads of ['1', '3']) {
    assert.ok((await trainWeights(data, threads)).equals(first), `ANDROMEDA_THREADS=${threads} gives other weights than 2 threads`);
  }
});

test('ANDROMEDA_THREADS must be an integer from 1 to 1024 (train and generate)', { timeout: 60_000 }, async () => {
  const data = await smallDataset();
  const out = await tempDir();
  const trainArgs = ['train', '--data', data, '--out', out, '--device', 'cpu', '--preset', 'tiny', '--steps', '1', '--seq-len', '32', '--quiet'];
  const ok = await run(trainArgs, '2');
  assert.equal(ok.code, 0, ok.stderr);
  for (const bad of ['100000', '-5', 'abc', '0', '2.5', '1025']) {
    const expected = new RegExp(`ANDROMEDA_THREADS must be an integer from 1 to 1024, got "${bad.replace('.', '\\.')}"`);
    for (const argv of [['generate', out, '--prompt', 'the', '--max-tokens', '2', '--device', 'cpu'], [...trainArgs, '--resume']]) {
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
  const argv = ['train', '--data', data, '--out', out, '--device', 'cpu', '--preset', 'tiny', '--steps', '1', '--seq-len', '32', '--quiet'];
  const bad = await run(argv, '2', { ANDROMEDA_CPU_ISA: 'sse9' });
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /ANDROMEDA_CPU_ISA must be generic, avx2, avx512, got "sse9"/);
  const capped = await run(argv, '2', { ANDROMEDA_CPU_ISA: 'generic' });
  assert.equal(capped.code, 0, capped.stderr);
});
