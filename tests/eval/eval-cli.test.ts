// `andromeda eval` as users run it: flags checked before anything is loaded, and the --json report's shape
// on a small checkpoint.
import '../../src/engine/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Andromeda } from '../../src/model/andromeda.js';
import { saveCheckpoint } from '../../src/model/weights-file.js';
import { parseEvalArgs } from '../../src/cli/commands/eval.js';
import { UsageError } from '../../src/cli/command.js';
import type { EvalReport } from '../../src/eval/run-eval.js';
import { isCorrectAnswer } from '../../src/eval/retrieval-prompts.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A byte-vocabulary model meant for 16 tokens, saved as a checkpoint (no tokenizer.json: bytes are assumed). */
function smallCheckpoint(): string {
  const dir = mkdtempSync(join(tmpdir(), 'andromeda-eval-'));
  const model = new Andromeda(
    {
      vocabSize: 257,
      dim: 32,
      depth: 1,
      heads: 2,
      headDim: 16,
      maxSeqLen: 16,
      alibiHeads: 1,
      rotary: { dim: 16, xpos: true },
    },
    { seed: 1 },
  );
  saveCheckpoint(join(dir, 'ckpt'), model);
  model.dispose();
  writeFileSync(join(dir, 'text.txt'), 'It was the best of times, it was the worst of times. '.repeat(20));
  return dir;
}

test('bad flags are usage errors naming the flag, raised before any model is loaded', () => {
  const dir = smallCheckpoint();
  const ckpt = join(dir, 'ckpt');
  const cases: [string[], RegExp][] = [
    [[], /give the checkpoint to evaluate with --model/],
    [['--model', join(dir, 'missing')], /--model .*missing: no such checkpoint/],
    [['--model', `a=${ckpt}`, '--model', `a=${ckpt}`], /two models have the same label/],
    [['--model', ckpt, '--length=-1'], /--length must be an integer ≥ 0, got "-1"/],
    [['--model', ckpt, '--windows', '0'], /--windows must be a positive integer/],
    [['--model', ckpt, '--passkey', '512,abc'], /--passkey: "abc" is not a positive length/],
    [['--model', ckpt, '--passkey', '1k,1024'], /--passkey: "1k,1024" repeats a length/],
    [['--model', ckpt, '--depths', '0,1.5'], /--depths: "1.5" is not a fraction in \[0, 1\]/],
    [['--model', ckpt, '--rotary-yarn', '0.5'], /--rotary-yarn must be a number ≥ 1, got "0.5"/],
    [['--model', ckpt, '--rotary-yarn', '2', '--rotary-ntk', '2'], /one rotary scaling at a time/],
    [['--model', ckpt, '--original-length', '512'], /--original-length applies to --rotary-yarn/],
    [['--model', ckpt, '--xpos', 'maybe'], /--xpos must be on or off, got "maybe"/],
    [['--model', ckpt, '--alibi-heads', '1.5'], /--alibi-heads must be an integer ≥ 0/],
    [['--model', ckpt, '--length', '0'], /nothing to evaluate/],
    [['--model', ckpt, '--text', join(dir, 'none.txt')], /--text .*none.txt: no such file/],
    [['--model', ckpt, '--html', dir], /--html/],
    [['--model', ckpt, '--device', 'gpu'], /--device must be auto, cpu, cuda or cuda:N/],
    [['--model', ckpt, '--bogus'], /bogus/],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => parseEvalArgs(args),
      (e: unknown) => e instanceof UsageError && message.test(e.message),
      args.join(' '),
    );
  }
  // Limits that depend on the model are checked once it is loaded, before any evaluation runs.
  const r = spawnSync(process.execPath, [cli, 'eval', '--model', ckpt, '--alibi-heads', '3'], { timeout: 60_000 });
  assert.equal(r.status, 1);
  assert.match(r.stderr.toString(), /--alibi-heads must be an integer from 0 to the model's 2 heads, got 3/);
  const short = spawnSync(process.execPath, [cli, 'eval', '--model', ckpt, '--passkey', '50'], { timeout: 60_000 });
  assert.equal(short.status, 1);
  assert.match(short.stderr.toString(), /--passkey 50: .*shorter than the prompt without filler/);
});

test('--json reports the loss by position bucket and the retrieval grids; --html writes the page', () => {
  const dir = smallCheckpoint();
  const html = join(dir, 'eval.html');
  const r = spawnSync(
    process.execPath,
    [
      cli,
      'eval',
      '--model',
      `tiny=${join(dir, 'ckpt')}`,
      '--text',
      join(dir, 'text.txt'),
      '--length',
      '64',
      '--windows',
      '3',
      '--passkey',
      '300,400',
      '--needle',
      '300',
      '--depths',
      '0,1',
      '--trials',
      '2',
      '--rotary-yarn',
      '2',
      '--json',
      '--html',
      html,
    ],
    { timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr.toString());
  const report = JSON.parse(r.stdout.toString()) as EvalReport;
  assert.equal(report.version, 1);
  assert.deepEqual(report.overrides, { yarn: 2 });
  assert.equal(report.models.length, 1);
  const m = report.models[0]!;
  assert.equal(m.label, 'tiny');
  assert.equal(m.trainingLength, 16, "the config's maxSeqLen when no trainer state records the length");
  assert.match(m.trainedPositions, /ALiBi on 1\/2 heads; rotary dim 16 base 10000, xPos$/);
  assert.match(m.evaluatedPositions, /YaRN ×2 from 16/);
  const loss = m.loss!;
  assert.equal(loss.windows, 3);
  assert.equal(loss.length, 64);
  assert.deepEqual(
    loss.buckets.map((b) => [b.start, b.end, b.tokens]),
    [
      [0, 16, 48],
      [16, 32, 48],
      [32, 64, 96],
    ],
  );
  for (const b of loss.buckets) {
    assert.deepEqual(Object.keys(b).sort(), [
      'bitsPerByte',
      'bitsPerByteUpToEnd',
      'bytes',
      'end',
      'loss',
      'lossUpToEnd',
      'start',
      'tokens',
    ]);
    assert.ok(b.loss > 0 && Number.isFinite(b.loss));
  }
  assert.equal(loss.lossAtTrainingLength, loss.buckets[0]!.lossUpToEnd);
  for (const [table, lengths] of [
    [m.passkey!, [300, 400]],
    [m.needle!, [300]],
  ] as const) {
    assert.deepEqual(
      table.cells.map((c) => [c.length, c.depth, c.trials]),
      lengths.flatMap((l) => [
        [l, 0, 2],
        [l, 1, 2],
      ]),
    );
    for (const c of table.cells) {
      assert.equal(c.accuracy, c.correct / c.trials);
      assert.ok(c.promptTokens <= c.length);
      assert.equal(c.samples.length, c.trials);
      assert.equal(c.correct, c.samples.filter((x) => isCorrectAnswer(x.continuation, x.answer)).length);
      for (const x of c.samples) assert.match(x.answer, /^\d{5}$|^\d{7}$/);
    }
    assert.deepEqual(
      table.byLength.map((b) => b.length),
      lengths,
    );
  }
  assert.ok(existsSync(html));
  const page = readFileSync(html, 'utf8');
  assert.match(page, /<svg/);
  assert.match(page, /tiny: passkey retrieval/);
  assert.match(page, /tiny: needle in a haystack/);
  assert.doesNotMatch(page, /<script/);
});
