// `andromeda generate --draft`: one prompt by speculative decoding, run as the real CLI against the same
// command without a draft.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../../tests/fixtures/xtransformers-1.20/', import.meta.url));

function andromeda(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** Noise on every weight of the draft: enough that some proposals are rejected, little enough that many are not. */
const DRAFT_NOISE = 0.05;

/**
 * A checkpoint of the model at `from` with uniform noise on every weight: a draft that disagrees at times.
 * `extraTokens` grows its vocabulary (new embedding and output rows of zeros).
 */
function writeNoisyCopy(from: string, to: string, extraTokens = 0): void {
  mkdirSync(to);
  const config = JSON.parse(readFileSync(join(from, 'config.json'), 'utf8'));
  const vocab: number = config.model.vocabSize;
  config.model.vocabSize += extraTokens;
  writeFileSync(join(to, 'config.json'), JSON.stringify(config));
  const { tensors, metadata } = readSafetensors(join(from, 'model.safetensors'));
  let state = 12345;
  const uniform = (): number => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const noisy = new Map<string, Tensor>();
  try {
    for (const [name, t] of tensors) {
      const shape = [...t.shape];
      const rowSize = t.size / shape[0]!;
      const grown = shape[0] === vocab && extraTokens > 0;
      if (grown) shape[0]! += extraTokens;
      const values = new Float32Array(grown ? t.size + extraTokens * rowSize : t.size);
      (t.toArray() as Float32Array).forEach((v, i) => (values[i] = v + DRAFT_NOISE * uniform()));
      noisy.set(name, Tensor.fromArray(values, shape));
    }
    writeSafetensors(join(to, 'model.safetensors'), noisy, metadata);
  } finally {
    for (const t of [...tensors.values(), ...noisy.values()]) t.dispose();
  }
}

/** Accepted and proposed draft tokens and target steps, from the summary line on stderr. */
function speculativeCounts(stderr: string): { accepted: number; proposed: number; steps: number } {
  const m = /speculative: (\d+)\/(\d+) draft tokens accepted \([\d.]+%\), (\d+) target steps/.exec(stderr);
  assert.ok(m, `no speculative summary in:\n${stderr}`);
  return { accepted: Number(m[1]), proposed: Number(m[2]), steps: Number(m[3]) };
}

describe('generate --draft', () => {
  let dir = '';
  const base = ['generate', 'ck', '--tokenizer', 'byte', '--temperature', '0', '--ignore-eos', '--prompt', 'Whale'];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'andromeda-draft-'));
    for (const [fixture, name] of [
      ['andromeda-tiny', 'ck'],
      ['orca-tiny', 'other-vocab'],
    ]) {
      const converted = andromeda(['convert', join(fixtures, fixture!), name!], dir);
      assert.equal(converted.status, 0, converted.stderr);
    }
    writeNoisyCopy(join(dir, 'ck'), join(dir, 'noisy'));
    writeNoisyCopy(join(dir, 'ck'), join(dir, 'wider'), 1);
  });

  for (const k of [1, 3]) {
    test(`greedy with a draft rejected at times writes what the model alone writes (64 tokens, k = ${k})`, () => {
      const alone = andromeda([...base, '--max-tokens', '64'], dir);
      assert.equal(alone.status, 0, alone.stderr);
      const r = andromeda([...base, '--max-tokens', '64', '--draft', 'noisy', '--draft-tokens', String(k)], dir);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.stdout, alone.stdout);
      assert.match(r.stderr, /\[64 tokens in .*token budget reached/);
      const { accepted, proposed, steps } = speculativeCounts(r.stderr);
      assert.ok(accepted < proposed, `some proposals are rejected (${accepted}/${proposed})`);
      assert.ok(accepted > 0, 'some proposals are accepted');
      // Every step yields its accepted proposals and one token of the target's.
      assert.equal(accepted + steps, 64);
    });
  }

  test('a draft identical to the model has every proposal accepted: k + 1 tokens per target step', () => {
    const r = andromeda([...base, '--max-tokens', '64', '--draft', 'ck', '--draft-tokens', '3'], dir);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(speculativeCounts(r.stderr), { accepted: 48, proposed: 48, steps: 16 });
  });

  test('--max-tokens and --stop end the text where the model alone ends it', () => {
    for (const limits of [
      ['--max-tokens', '7'],
      ['--max-tokens', '64', '--stop', 'xyz'],
    ]) {
      const alone = andromeda([...base, ...limits], dir);
      assert.equal(alone.status, 0, alone.stderr);
      const r = andromeda([...base, ...limits, '--draft', 'noisy', '--draft-tokens', '3'], dir);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.stdout, alone.stdout, limits.join(' '));
    }
    const full = andromeda([...base, '--max-tokens', '64'], dir).stdout.toString('utf8');
    // A stop string taken from the middle of the greedy text, so it is met and the text before it is written.
    const generated = full.slice('Whale'.length);
    const stop = generated.slice(10, 12);
    const r = andromeda([...base, '--max-tokens', '64', '--stop', stop, '--draft', 'noisy'], dir);
    assert.equal(r.status, 0, r.stderr);
    const alone = andromeda([...base, '--max-tokens', '64', '--stop', stop], dir);
    assert.equal(r.stdout.toString('utf8'), alone.stdout.toString('utf8'));
    assert.ok(r.stdout.length < full.length, 'the stop string cut the text');
    assert.match(r.stderr, /stopped at a stop string/);
  });

  test('--prompts with a draft: every prompt batched through the engine, the same JSON lines as without', () => {
    const prompts = ['Whale', 'Call me Ishmael', 'It was the best of times', '', 'Some years ago - never mind'];
    writeFileSync(join(dir, 'prompts.txt'), prompts.join('\n') + '\n');
    const args = ['generate', 'ck', '--tokenizer', 'byte', '--temperature', '0', '--ignore-eos', '--max-tokens', '24'];
    const batch = [...args, '--prompts', 'prompts.txt', '--max-batch', '3', '--block-size', '4'];
    const alone = andromeda(batch, dir);
    assert.equal(alone.status, 0, alone.stderr);
    const r = andromeda([...batch, '--draft', 'noisy', '--draft-tokens', '3'], dir);
    assert.equal(r.status, 0, r.stderr);
    const lines = (out: Buffer): { text: string; finishReason: string }[] =>
      out
        .toString('utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
    assert.equal(lines(r.stdout).length, prompts.length - 1, 'blank lines are not prompts');
    assert.deepEqual(lines(r.stdout), lines(alone.stdout));
    const m = /speculative: (\d+)\/(\d+) draft tokens accepted/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.ok(Number(m[1]) > 0 && Number(m[1]) < Number(m[2]), m[0]);
  });

  test('bad drafts and flag combinations are refused, naming the problem', () => {
    const fails = (args: string[], message: RegExp, beforeLoading = true): void => {
      const r = andromeda([...base, ...args], dir);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, message);
      if (beforeLoading) assert.doesNotMatch(r.stderr, /loaded /, 'refused before loading');
    };
    fails(['--draft-tokens', '2'], /--draft-tokens applies with --draft only/);
    fails(['--draft', 'noisy', '--draft-tokens', '0'], /--draft-tokens must be an integer from 1 to 15/);
    fails(['--draft', 'noisy', '--draft-tokens', '16'], /--draft-tokens must be an integer from 1 to 15/);
    fails(['--draft', 'missing'], /--draft missing: no such checkpoint/);
    fails(['--draft', 'noisy', '--min-p', '0.1'], /--draft cannot be combined with --min-p/);
    fails(['--draft', 'noisy', '--no-cache'], /cannot be combined with --no-cache/);
    fails(['--draft', 'noisy', '--max-tokens', '0'], /--draft needs --max-tokens of at least 1/);
    const batch = ['generate', 'ck', '--tokenizer', 'byte', '--prompts', 'p.txt', '--draft', 'noisy'];
    const tight = andromeda([...batch, '--max-batch', '8', '--token-budget', '16'], dir);
    assert.equal(tight.status, 1, tight.stderr);
    assert.match(tight.stderr, /--token-budget 16 must be at least --max-batch 8 × \(--draft-tokens 4 \+ 1\) = 40/);
    fails(['--draft', 'wider'], /--draft wider: its vocabulary \(301 tokens\) differs from the model's \(300\)/, false);
    fails(
      ['--draft', 'other-vocab'],
      /--draft other-vocab: .*tokenizer vocabulary \(257\) exceeds the model's \(256\)/,
      false,
    );
  });
});
