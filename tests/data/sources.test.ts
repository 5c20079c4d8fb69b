import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readDocuments, readJsonlFile, readTextFile, type Document } from '../../src/data/sources.js';

async function collect(docs: AsyncIterable<Document>): Promise<Document[]> {
  const out: Document[] = [];
  for await (const d of docs) out.push(d);
  return out;
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'andromeda-src-'));
}

test('directories are walked recursively in sorted order; .jsonl files are read as JSONL', async () => {
  const dir = await tempDir();
  await mkdir(join(dir, 'b', 'deep'), { recursive: true });
  await writeFile(join(dir, 'a.txt'), 'first document\n');
  await writeFile(join(dir, 'b', 'deep', 'c.md'), 'third');
  await writeFile(join(dir, 'b', 'data.jsonl'), '{"text":"second"}\n\n{"text":"second b"}');
  await writeFile(join(dir, '.hidden.txt'), 'skipped');
  await writeFile(join(dir, 'b', 'image.bin'), Buffer.from([1, 2, 0, 3]));
  const skipped: string[] = [];
  const docs = await collect(readDocuments([dir], { onSkip: (p) => skipped.push(p) }));
  assert.deepEqual(
    docs.map((d) => d.text),
    ['first document\n', 'second', 'second b', 'third'],
  );
  assert.deepEqual(
    docs.map((d) => d.id.slice(dir.length)),
    ['/a.txt', '/b/data.jsonl:1', '/b/data.jsonl:3', '/b/deep/c.md'],
  );
  assert.deepEqual(skipped, [join(dir, 'b', 'image.bin')]);
});

test('multi-byte characters split across read chunks decode correctly', async () => {
  const dir = await tempDir();
  const text = 'héllo 🐋 wörld '.repeat(50);
  await writeFile(join(dir, 'x.txt'), text);
  await writeFile(
    join(dir, 'x.jsonl'),
    `${JSON.stringify({ text })}\n${JSON.stringify({ text: text.toUpperCase() })}\n`,
  );
  for (const chunkBytes of [1, 3, 7, 64]) {
    assert.deepEqual(
      (await collect(readTextFile(join(dir, 'x.txt'), { chunkBytes }))).map((d) => d.text),
      [text],
    );
    assert.deepEqual(
      (await collect(readJsonlFile(join(dir, 'x.jsonl'), { chunkBytes }))).map((d) => d.text),
      [text, text.toUpperCase()],
    );
  }
});

test('long text files are cut after line breaks into numbered parts that join back', async () => {
  const dir = await tempDir();
  const lines = Array.from({ length: 100 }, (_, i) => `line ${i} ${'x'.repeat(i % 13)}\n`).join('');
  await writeFile(join(dir, 'big.txt'), lines);
  const docs = await collect(readTextFile(join(dir, 'big.txt'), { maxDocumentBytes: 200, chunkBytes: 50 }));
  assert.ok(docs.length > 5);
  assert.equal(docs.map((d) => d.text).join(''), lines);
  for (const d of docs) assert.ok(d.bytes!.length <= 200 && d.text.endsWith('\n'));
  assert.deepEqual(
    docs.slice(0, 2).map((d) => d.id.slice(dir.length)),
    ['/big.txt#0', '/big.txt#1'],
  );
});

test('JSONL: nested field paths, and errors that name file, line and problem', async () => {
  const dir = await tempDir();
  const file = join(dir, 'd.jsonl');
  await writeFile(file, '{"meta":{"body":"deep"}}\n');
  assert.deepEqual(
    (await collect(readJsonlFile(file, { jsonlField: 'meta.body' }))).map((d) => d.text),
    ['deep'],
  );

  await writeFile(file, '{"text":"ok"}\n{"text": "broken\n');
  await assert.rejects(collect(readJsonlFile(file)), (e: Error) =>
    e.message.startsWith(`${file}:2: malformed JSON line`),
  );
  await writeFile(file, '{"text":"ok"}\n\n{"content":"no text here","id":3}\n');
  await assert.rejects(
    collect(readJsonlFile(file)),
    new RegExp(`${file}:3: text field "text" is missing \\(fields present: content, id\\)`),
  );
  await writeFile(file, '{"text":42}\n');
  await assert.rejects(collect(readJsonlFile(file)), /:1: text field "text" is a number, not a string/);
  await writeFile(file, '[1,2]\n');
  await assert.rejects(
    collect(readJsonlFile(file)),
    /:1: text field "text" is missing \(fields present: a JSON array, not an object\)/,
  );
});

test('a missing input path is reported by name', async () => {
  const missing = join(await tempDir(), 'nowhere.txt');
  await assert.rejects(collect(readDocuments([missing])), new RegExp(`input not found: ${missing}`));
});

test('text files keep their exact bytes, also where they are not valid UTF-8', async () => {
  const dir = await tempDir();
  const bytes = Buffer.concat([
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from('Caf'),
    Buffer.from([0xe9, 0x0a, 0xff, 0xc3]),
    Buffer.from('é🐋'.repeat(40)),
  ]);
  await writeFile(join(dir, 'latin1.txt'), bytes);
  for (const maxDocumentBytes of [7, 64, 1 << 20]) {
    const docs = await collect(readTextFile(join(dir, 'latin1.txt'), { maxDocumentBytes, chunkBytes: 5 }));
    assert.deepEqual(Buffer.concat(docs.map((d) => d.bytes!)), bytes, `maxDocumentBytes ${maxDocumentBytes}`);
  }
  const [whole] = await collect(readTextFile(join(dir, 'latin1.txt')));
  assert.ok(
    whole!.text.startsWith('\ufeffCaf\ufffd\n\ufffd\ufffd'),
    'the byte-order mark is kept, invalid bytes read as U+FFFD',
  );
});

test('a line longer than the document limit is cut between characters, never inside one', async () => {
  const dir = await tempDir();
  const text = 'é🐋x'.repeat(40);
  await writeFile(join(dir, 'one-line.txt'), text);
  const docs = await collect(readTextFile(join(dir, 'one-line.txt'), { maxDocumentBytes: 7, chunkBytes: 3 }));
  assert.ok(docs.length > 10);
  for (const d of docs) assert.deepEqual(Buffer.from(d.text), Buffer.from(d.bytes!), `${d.id} ends inside a character`);
  assert.equal(docs.map((d) => d.text).join(''), text);
});

test("JSONL field paths read only the record's own fields", async () => {
  const file = join(await tempDir(), 'p.jsonl');
  await writeFile(file, '{"text":"a","meta":{}}\n');
  for (const field of ['constructor', '__proto__', 'meta.toString']) {
    await assert.rejects(
      collect(readJsonlFile(file, { jsonlField: field })),
      new RegExp(`text field "${field.replace('.', '\\.')}" is missing`),
    );
  }
});
