import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrainArgs } from '../../src/cli/commands/train.js';
import { UsageError } from '../../src/cli/command.js';
import { positiveIntegerFlag } from '../../src/cli/args.js';
import { DEFAULT_CONFIG, parseDataSpec } from '../../src/train/config.js';
import { quickstartConfig } from '../../src/cli/commands/quickstart.js';
import { tempDir } from './helpers.js';

test('train flags: defaults, a JSON config file, and flags that override it', async () => {
  const dir = await tempDir();
  const file = join(dir, 'run.json');
  writeFileSync(
    file,
    JSON.stringify({
      steps: 300,
      'batch-size': 4,
      lr: 0.01,
      preset: 'small',
      model: { depth: 3 },
      data: 'books=data/books@2',
    }),
  );
  const p = parseTrainArgs(['--config', file, '--lr', '0.002', '--seq-len', '64', '--resume']);
  assert.equal(p.config.steps, 300);
  assert.equal(p.config.batchSize, 4);
  assert.equal(p.config.lr, 0.002, 'the flag wins over the file');
  assert.equal(p.config.seqLen, 64);
  assert.equal(p.config.preset, 'small');
  assert.deepEqual(p.config.model, { depth: 3 });
  assert.deepEqual(p.config.data, ['books=data/books@2']);
  assert.equal(p.config.weightDecay, DEFAULT_CONFIG.weightDecay);
  assert.equal(p.resume, true);
  assert.deepEqual(Object.keys(p.explicit).sort(), ['batchSize', 'data', 'lr', 'model', 'preset', 'seqLen', 'steps']);
  const inputs = parseTrainArgs(['a.txt', 'dir/', '--steps', '50']);
  assert.deepEqual(inputs.config.inputs, ['a.txt', 'dir/']);
  assert.equal(inputs.config.warmup, 5, 'a short run without --warmup warms up over 10% of its steps');
  assert.deepEqual(parseTrainArgs(['--data', 'a', '--data', 'b']).config.data, ['a', 'b']);
});

test('train flags: bad values and files give usage errors naming the problem', async () => {
  const dir = await tempDir();
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"steps": 10, "stpes": 3}');
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, '{"steps": ');
  const cases: Array<[string[], RegExp]> = [
    [['--steps', '0'], /--steps must be a positive integer, got "0"/],
    [['--batch-size', '2.5'], /--batch-size must be a positive integer/],
    [['--min-lr-ratio', '1.5'], /--min-lr-ratio must be a number in \[0, 1\)/],
    [['--segments', 'maybe'], /--segments must be true or false/],
    [['--model', '{depth'], /--model must be a JSON object/],
    [['--dtype', 'float16'], /dtype must be auto, float32 or bfloat16/],
    [['--warmup', '20', '--steps', '10'], /warmup \(20\) \+ cooldown \(0\) exceed steps \(10\)/],
    [['--config', bad], /unknown setting "stpes"/],
    [['--config', broken], /is not valid JSON/],
    [['--config', join(dir, 'none.json')], /config file not found/],
    [['--data', 'x', 'input.txt'], /either tokenized --data directories or raw inputs/],
    [['--data', 'b=dir@-1'], /weight must be a positive number/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(
      () => parseTrainArgs(args),
      (e: unknown) => e instanceof UsageError && pattern.test((e as Error).message),
      args.join(' '),
    );
  }
});

test('data specs: dir, name=dir, name=dir@weight', () => {
  assert.deepEqual(parseDataSpec('data/books'), { name: undefined, dir: 'data/books', weight: undefined });
  assert.deepEqual(parseDataSpec('books=data/books'), { name: 'books', dir: 'data/books', weight: undefined });
  assert.deepEqual(parseDataSpec('code=/abs/code@0.5'), { name: 'code', dir: '/abs/code', weight: 0.5 });
});

test('quickstart: tiny on the CPU within a time cap, the larger small preset on CUDA', () => {
  const cpu = quickstartConfig('cpu');
  assert.equal(cpu.preset, 'tiny');
  assert.ok(cpu.maxMinutes > 0 && cpu.maxMinutes <= 8);
  const gpu = quickstartConfig('cuda:0');
  assert.equal(gpu.preset, 'small');
  assert.equal(gpu.device, 'cuda:0');
});

test('integer flags of every command are safe integers: 1e30 and 2^53 + 1 are refused, naming the flag', () => {
  assert.equal(positiveIntegerFlag('seq', '4096', 1), 4096);
  assert.equal(positiveIntegerFlag('seq', undefined, 7), 7);
  for (const raw of ['1e30', '9007199254740993', '0', '-3', '2.5', 'NaN', 'Infinity', '']) {
    assert.throws(
      () => positiveIntegerFlag('seq', raw, 1),
      (e: unknown) =>
        e instanceof UsageError && (e as Error).message === `--seq must be a positive integer, got "${raw}"`,
      raw,
    );
  }
});
