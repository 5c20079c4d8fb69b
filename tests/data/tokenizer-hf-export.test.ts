// The tokenizer.json files Andromeda writes load in Hugging Face `tokenizers` and give the same ids there.
// Needs python3 with `tokenizers` (the GPU machine has it); elsewhere the test is skipped and says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ByteTokenizer, loadTokenizer, trainBpe } from '../../src/data/tokenizer/index.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/fixtures/make-tokenizer-fixtures.py', import.meta.url));
/** The text make-tokenizer-fixtures.py --check encodes (CHECK_SAMPLE there). */
const CHECK_SAMPLE = 'Hello, world! Größe 12345 — 你好 🤖\n  indented\ttabs<|endoftext|>after \u0085\ufeff end';

const probe = spawnSync('python3', ['-c', 'import tokenizers'], { encoding: 'utf8' });
const noTokenizers =
  probe.status === 0 ? false : 'python3 with the tokenizers library is not available (pip install tokenizers)';

test(
  'tokenizer.json written by Andromeda loads in tokenizers.Tokenizer.from_file with equal ids',
  { skip: noTokenizers },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'andromeda-hf-export-'));
    const bpe = await trainBpe(
      [CHECK_SAMPLE.repeat(3), 'the quick brown fox jumps over the lazy dog, 1234567 times; Größe größer'],
      { vocabSize: 320 },
    );
    const files = { byte: join(dir, 'byte.json'), bpe: join(dir, 'bpe.json') };
    await new ByteTokenizer().save(files.byte);
    await bpe.save(files.bpe);
    const run = spawnSync('python3', [SCRIPT, '--check', files.byte, files.bpe], { encoding: 'utf8' });
    assert.equal(run.status, 0, `--check failed:\n${run.stdout}${run.stderr}`);
    const results = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { path: string; ids: number[]; decoded: string });
    assert.equal(results.length, 2);
    for (const { path, ids, decoded } of results) {
      const ours = await loadTokenizer(path);
      assert.deepEqual([...ours.encode(CHECK_SAMPLE, { allowSpecial: true })], ids, path);
      assert.equal(decoded, CHECK_SAMPLE);
    }
  },
);
