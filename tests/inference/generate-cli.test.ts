// `andromeda generate --prompts`: many prompts through the inference engine, run as the real CLI.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../src/engine/index.js';
import { loadModelForInference } from '../../src/inference/load.js';
import { generate } from '../../src/inference/generate.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const fixture = fileURLToPath(new URL('../../../tests/fixtures/xtransformers-1.20/andromeda-tiny', import.meta.url));

function andromeda(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

describe('generate --prompts', () => {
  let dir = '';
  const prompts = ['Call me Ishmael.', 'It was the best of times', 'a', 'Whale'];
  let expected: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'andromeda-generate-'));
    const converted = andromeda(['convert', fixture, 'ck'], dir);
    assert.equal(converted.status, 0, converted.stderr);
    // The reference: each prompt alone, greedy, recomputing the whole sequence every token.
    const loaded = await loadModelForInference(join(dir, 'ck'), 'cpu', 'byte');
    try {
      expected = prompts.map(
        (p) =>
          generate(loaded.model, loaded.family, loaded.tokenizer, p, {
            temperature: 0,
            maxTokens: 12,
            stopAtEos: false,
            cache: false,
          }).text,
      );
    } finally {
      loaded.model.dispose();
    }
  });

  const base = ['generate', 'ck', '--tokenizer', 'byte', '--temperature', '0', '--max-tokens', '12', '--ignore-eos'];

  test('a file of one prompt per line gives one JSON line per prompt, in order, equal to each prompt alone', () => {
    writeFileSync(join(dir, 'prompts.txt'), prompts.join('\n') + '\n\n');
    const r = andromeda([...base, '--prompts', 'prompts.txt', '--max-batch', '2', '--token-budget', '8'], dir);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, prompts.length, 'the blank lines are skipped');
    lines.forEach((line, i) => {
      assert.equal(line.index, i);
      assert.equal(line.text, expected[i], prompts[i]);
      assert.equal(line.finishReason, 'length');
      assert.deepEqual(line.usage, { promptTokens: Buffer.byteLength(prompts[i]!) + 1, completionTokens: 12 });
    });
    assert.match(r.stderr, /4 prompts, 48 tokens in/);
  });

  test('JSONL entries carry ids and their own parameters', () => {
    const entries = [
      { prompt: prompts[0], id: 'first' },
      { prompt: prompts[1], id: 2, maxTokens: 3, logprobs: true },
      { prompt: prompts[2], stop: [expected[2]!.slice(4, 6)] },
    ];
    writeFileSync(join(dir, 'prompts.jsonl'), entries.map((e) => JSON.stringify(e)).join('\n'));
    const r = andromeda([...base, '--prompts', 'prompts.jsonl'], dir);
    assert.equal(r.status, 0, r.stderr);
    const [a, b, c] = r.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(a.id, 'first');
    assert.equal(a.text, expected[0]);
    assert.equal(b.id, 2);
    assert.equal(b.text, expected[1]!.slice(0, 3));
    assert.equal(b.logprobs.length, 3);
    for (const t of b.logprobs) assert.ok(t.logprob <= 0 && Number.isInteger(t.tokenId));
    assert.equal(a.logprobs, undefined);
    assert.equal(c.finishReason, 'stop');
    assert.equal(c.text, expected[2]!.slice(0, expected[2]!.indexOf(expected[2]!.slice(4, 6))));
  });

  test('bad prompts files and flag combinations are refused before the model loads, naming the problem', () => {
    const fails = (args: string[], message: RegExp): void => {
      const r = andromeda(args, dir);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /loaded /, 'refused before loading');
    };
    writeFileSync(join(dir, 'bad.jsonl'), '{"prompt": "a"}\n{"prompt": "b", "temprature": 1}\n');
    fails([...base, '--prompts', 'bad.jsonl'], /--prompts bad.jsonl line 2: unknown key "temprature"/);
    writeFileSync(join(dir, 'bad2.jsonl'), '{"prompt": "a", "topP": 2}\n');
    fails([...base, '--prompts', 'bad2.jsonl'], /bad2.jsonl line 1: topP must be in \(0, 1\]/);
    writeFileSync(join(dir, 'bad3.jsonl'), '["a"]\n');
    fails([...base, '--prompts', 'bad3.jsonl'], /bad3.jsonl line 1: expected an object/);
    writeFileSync(join(dir, 'blank.txt'), '\n \n');
    fails([...base, '--prompts', 'blank.txt'], /blank.txt: no prompts/);
    fails([...base, '--prompts', 'missing.txt'], /--prompts missing.txt: cannot read it \(ENOENT\)/);
    fails([...base, '--prompts', 'blank.txt', '--prompt', 'x'], /give --prompts or --prompt, not both/);
    fails([...base, '--prompts', 'prompts.txt', '--no-cache'], /--no-cache applies to a single prompt/);
    fails([...base, '--prompt', 'x', '--max-batch', '2'], /--max-batch applies to --prompts only/);
    fails([...base, '--prompts', 'prompts.txt', '--max-batch', '8', '--token-budget', '4'], /--token-budget 4/);
    fails([...base, '--prompts', 'prompts.txt', '--block-size', '3'], /--block-size must be a power of two/);
  });

  test('one prompt with a stop string goes through the engine and writes text up to it', () => {
    const stop = expected[0]!.slice(3, 5);
    const r = andromeda([...base, '--prompt', prompts[0]!, '--stop', stop], dir);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, prompts[0] + expected[0]!.slice(0, expected[0]!.indexOf(stop)) + '\n');
  });
});
