import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  defaultCorpusDir,
  defaultCorpusDocuments,
  defaultCorpusManifest,
  type CorpusDocument,
} from '../../src/data/default-corpus.js';

async function collect(docs: AsyncIterable<CorpusDocument>): Promise<CorpusDocument[]> {
  const out: CorpusDocument[] = [];
  for await (const d of docs) out.push(d);
  return out;
}

test('the embedded corpus is found from the compiled module and matches its manifest', async () => {
  const dir = defaultCorpusDir();
  assert.ok(existsSync(join(dir, 'README.md')));
  const manifest = defaultCorpusManifest();
  assert.deepEqual(manifest.sources.map((s) => s.group).sort(), ['code', 'prose', 'prose']);
  const all = await collect(defaultCorpusDocuments());
  let totalBytes = 0;
  for (const source of manifest.sources) {
    for (const split of ['train', 'val'] as const) {
      const docs = all.filter((d) => d.source === source.name && d.split === split);
      assert.equal(docs.length, source.documents[split], `${source.name} ${split} document count`);
      const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
      assert.equal(bytes, source.bytes[split], `${source.name} ${split} bytes`);
      totalBytes += bytes;
    }
  }
  assert.ok(totalBytes > 1_000_000 && totalBytes < 4_200_000, `corpus has ${totalBytes} bytes`);
  const ids = new Set(all.map((d) => d.id));
  assert.equal(ids.size, all.length, 'document ids are unique');
  assert.ok(ids.has('moby-dick/chapter-001'));
});

test('the held-out split is fixed and disjoint from training; queries filter by group', async () => {
  const val = await collect(defaultCorpusDocuments({ split: 'val' }));
  const train = await collect(defaultCorpusDocuments({ split: 'train' }));
  assert.ok(val.every((d) => d.split === 'val') && train.every((d) => d.split === 'train'));
  const trainIds = new Set(train.map((d) => d.id));
  assert.ok(val.every((d) => !trainIds.has(d.id)));
  assert.ok(
    val.some((d) => d.id === 'moby-dick/chapter-008'),
    'the tenth Moby-Dick document (chapter 8) is held out',
  );
  const code = await collect(defaultCorpusDocuments({ groups: ['code'], split: 'train' }));
  assert.ok(
    code.length > 10 && code.every((d) => d.group === 'code' && d.text.includes('Copyright (c) Microsoft Corporation')),
  );
});
