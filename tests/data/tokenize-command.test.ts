import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenizeCommand } from '../../src/cli/commands/tokenize.js';
import { UsageError } from '../../src/cli/command.js';
import { TokenDataset } from '../../src/data/dataset.js';
import { defaultCorpusManifest } from '../../src/data/default-corpus.js';
import { unigramCrossEntropy } from '../../src/data/loss-units.js';
import { MixtureLoader } from '../../src/data/mixture.js';
import { sequentialBatches } from '../../src/data/packing.js';
import { trainBpe } from '../../src/data/tokenizer/index.js';

const DOCS = [
  'The whale swam on.\n',
  'const x = 1;\nexport default x;\n',
  'Call me Ishmael.',
  'Naïve café — 🐋 and 漢字.',
  'last one',
];

async function inputDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'andromeda-tok-in-'));
  await writeFile(join(dir, 'a.txt'), DOCS[0]);
  await writeFile(
    join(dir, 'b.jsonl'),
    DOCS.slice(1, 4)
      .map((body, i) => JSON.stringify({ id: i, body }))
      .join('\n') + '\n',
  );
  await writeFile(join(dir, 'c.txt'), DOCS[4]);
  return dir;
}

function splitDocuments(dataset: TokenDataset, split: string): string[] {
  const stream = dataset.split(split);
  const tokens = stream.read(0, stream.length);
  const docs: string[] = [];
  let start = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === dataset.tokenizer.eosId) {
      docs.push(dataset.tokenizer.decode(tokens.subarray(start, i)));
      start = i + 1;
    }
  }
  assert.equal(start, tokens.length, 'every split ends with EOS');
  return docs;
}

async function quietly<T>(fn: () => Promise<T>): Promise<{ result: T; stdout: string }> {
  const write = process.stdout.write.bind(process.stdout);
  const errWrite = process.stderr.write.bind(process.stderr);
  let stdout = '';
  process.stdout.write = ((chunk: string) => ((stdout += chunk), true)) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return { result: await fn(), stdout };
  } finally {
    process.stdout.write = write;
    process.stderr.write = errWrite;
  }
}

test('tokenize with a trained BPE writes shards, manifest and tokenizer; documents survive exactly', async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'andromeda-tok-out-')), 'ds');
  const input = await inputDir();
  await quietly(() =>
    tokenizeCommand.run([
      input,
      '--out',
      out,
      '--tokenizer',
      'bpe:300',
      '--jsonl-field',
      'body',
      '--val-fraction',
      '0.25',
      '--shard-tokens',
      '20',
      '--quiet',
    ]),
  );
  const dataset = await TokenDataset.open(out);
  assert.equal(dataset.tokenizer.kind, 'huggingface'); // the trained BPE is saved in Hugging Face's format
  assert.ok(dataset.tokenizer.vocabSize > 257, 'the tokenizer has trained merges, not just bytes');
  assert.equal(dataset.manifest.dtype, 'uint16');
  assert.deepEqual(splitDocuments(dataset, 'val'), [DOCS[3]]); // document 3 of 5 with f = 0.25
  assert.deepEqual(splitDocuments(dataset, 'train'), [DOCS[0], DOCS[1], DOCS[2], DOCS[4]]);
  const train = dataset.manifest.splits.train;
  assert.ok(train.shards.length > 1, 'small --shard-tokens gives several shards');
  assert.equal(
    train.textBytes,
    [0, 1, 2, 4].reduce((n, i) => n + Buffer.byteLength(DOCS[i]), 0),
  );
  dataset.verify();
  dataset.close();
});

test('tokenize accepts a Hugging Face tokenizer.json path', async () => {
  const dir = await inputDir();
  // not .json so the input walk reads it as text: fine, it is just text
  const hfPath = join(dir, 'hf-tokenizer.json.txt');
  const bpe = await trainBpe(DOCS, { vocabSize: 280 });
  await writeFile(hfPath, JSON.stringify(bpe.toJSON()));
  const out = join(dir, 'out');
  await quietly(() =>
    tokenizeCommand.run([
      join(dir, 'a.txt'),
      join(dir, 'c.txt'),
      '--out',
      out,
      '--tokenizer',
      hfPath,
      '--val-fraction',
      '0',
      '--quiet',
    ]),
  );
  const dataset = await TokenDataset.open(out);
  assert.equal(dataset.tokenizer.kind, 'huggingface');
  assert.deepEqual(splitDocuments(dataset, 'train'), [DOCS[0], DOCS[4]]);
  assert.equal(dataset.manifest.splits.val.tokens, 0);
  dataset.close();
});

test('the default corpus end to end: tokenize, load batches, held-out loss baseline', async () => {
  const out = await mkdtemp(join(tmpdir(), 'andromeda-tok-default-'));
  await quietly(() => tokenizeCommand.run(['--out', out, '--quiet']));
  const dataset = await TokenDataset.open(out);
  const corpus = defaultCorpusManifest();
  const valDocs = corpus.sources.reduce((n, s) => n + s.documents.val, 0);
  assert.equal(dataset.manifest.splits.val.documents, valDocs);
  assert.equal(
    dataset.manifest.splits.val.textBytes,
    corpus.sources.reduce((n, s) => n + s.bytes.val, 0),
  );
  const train = dataset.split('train');
  const val = dataset.split('val');
  const loader = new MixtureLoader({
    sources: [{ name: 'default', tokens: train }],
    seqLen: 128,
    batchSize: 4,
    eosId: dataset.tokenizer.eosId,
    seed: 1,
  });
  const batch = loader.next();
  assert.equal(batch.inputs.length, 4 * 128);
  const evalBatches = [
    ...sequentialBatches(val, { seqLen: 128, batchSize: 8, eosId: dataset.tokenizer.eosId, maxBatches: 2 }),
  ];
  assert.equal(evalBatches.length, 2);
  const baseline = unigramCrossEntropy(train, val, dataset.tokenizer.vocabSize);
  assert.ok(baseline > 2 && baseline < Math.log(257), `unigram byte baseline ${baseline} nats`);
  dataset.close();
});

test('--help prints usage; bad arguments are usage errors; missing inputs are named', async () => {
  const { stdout } = await quietly(() => tokenizeCommand.run(['--help']));
  assert.match(stdout, /^Usage: andromeda tokenize/);
  assert.match(stdout, /--val-fraction/);
  await assert.rejects(
    tokenizeCommand.run(['x.txt']),
    (e: Error) => e instanceof UsageError && /--out <dir> is required/.test(e.message),
  );
  await assert.rejects(
    tokenizeCommand.run(['--out', 'o', '--val-fraction', '1.5']),
    (e: Error) => e instanceof UsageError && /--val-fraction must be a number in \[0, 1\)/.test(e.message),
  );
  await assert.rejects(tokenizeCommand.run(['--out', 'o', '--tokenizer', 'bpe:abc']), UsageError);
  await assert.rejects(
    tokenizeCommand.run(['--out', 'o', '--bogus']),
    (e: Error) => e instanceof UsageError && /bogus/.test(e.message),
  );
  const out = await mkdtemp(join(tmpdir(), 'andromeda-tok-missing-'));
  await assert.rejects(
    quietly(() => tokenizeCommand.run(['/nonexistent/corpus', '--out', out, '--quiet'])),
    /input not found: \/nonexistent\/corpus/,
  );
});

test('tokenize keeps a text file that is not valid UTF-8 byte for byte (byte and BPE tokenizers)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'andromeda-tok-bytes-'));
  const bytes = Buffer.from([0x43, 0x61, 0x66, 0xe9, 0x0a, 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
  await writeFile(join(dir, 'latin1.txt'), bytes);
  for (const tokenizer of ['byte', 'bpe:260']) {
    const out = join(dir, `out-${tokenizer.replace(':', '-')}`);
    await quietly(() =>
      tokenizeCommand.run([
        join(dir, 'latin1.txt'),
        '--out',
        out,
        '--tokenizer',
        tokenizer,
        '--val-fraction',
        '0',
        '--quiet',
      ]),
    );
    const dataset = await TokenDataset.open(out);
    const stream = dataset.split('train');
    const tokens = stream.read(0, stream.length);
    assert.equal(tokens[tokens.length - 1], dataset.tokenizer.eosId);
    assert.deepEqual(
      Buffer.from(dataset.tokenizer.decodeBytes(tokens.subarray(0, tokens.length - 1))),
      bytes,
      tokenizer,
    );
    if (tokenizer === 'byte') assert.deepEqual(Array.from(tokens.subarray(0, 4)), [0x43, 0x61, 0x66, 0xe9]);
  }
});
