// Whole-file reads of user-named files (src/io/bounded-read.ts): devices that never end, named pipes with no
// writer, directories and oversized files are refused before a byte is read, quickly and naming the file — the
// cases that made `readFileSync` hang or run the process out of memory — and a regular file reads back exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, ftruncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  JSON_FILE_LIMIT,
  readBoundedFile,
  readBoundedText,
  readJsonFile,
  UnreadableFileError,
} from '../../src/io/bounded-read.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { TokenShard } from '../../src/data/shards.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'andromeda-bounded-read-'));
}

/** A named pipe nobody writes to (mkfifo); null where the system has none. */
function fifo(dir: string): string | null {
  const path = join(dir, 'pipe');
  const r = spawnSync('mkfifo', [path]);
  return r.status === 0 ? path : null;
}

/** A sparse file of `bytes` (no disk blocks used). */
function sparse(dir: string, bytes: number): string {
  const path = join(dir, 'big.json');
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
  return path;
}

test('a regular file reads back exactly; text as UTF-8; JSON parsed', () => {
  const dir = scratch();
  const bytes = Buffer.from(Array.from({ length: 70_001 }, (_, i) => (i * 7919) % 256));
  writeFileSync(join(dir, 'data.bin'), bytes);
  assert.deepEqual(readBoundedFile(join(dir, 'data.bin'), bytes.length), bytes);
  writeFileSync(join(dir, 'empty'), '');
  assert.equal(readBoundedFile(join(dir, 'empty'), 0).length, 0);
  writeFileSync(join(dir, 'text.txt'), 'héllo ✓');
  assert.equal(readBoundedText(join(dir, 'text.txt')), 'héllo ✓');
  writeFileSync(join(dir, 'config.json'), '{"depth": 2, "dims": [1, 2]}');
  assert.deepEqual(readJsonFile(join(dir, 'config.json')), { depth: 2, dims: [1, 2] });
  assert.throws(() => readJsonFile(join(dir, 'text.txt')), SyntaxError);
});

test('devices, pipes, directories and files over the bound are refused before reading, naming the file', () => {
  const dir = scratch();
  const refused = (path: string, reason: RegExp, maxBytes = JSON_FILE_LIMIT) => {
    const start = performance.now();
    assert.throws(
      () => readBoundedFile(path, maxBytes),
      (e: unknown) => e instanceof UnreadableFileError && e.path === path && reason.test(e.message),
      path,
    );
    assert.ok(performance.now() - start < 1000, `${path} was refused at once`);
  };
  refused('/dev/zero', /^\/dev\/zero is a character device, not a file$/);
  refused('/dev/urandom', /is a character device, not a file/);
  refused(dir, /is a directory, not a file/);
  const pipe = fifo(dir);
  if (pipe) refused(pipe, /is a named pipe, not a file/);
  refused(sparse(dir, JSON_FILE_LIMIT + 1), /is 64\.0 MiB, more than the 64\.0 MiB such a file may have/);
  writeFileSync(join(dir, 'eleven'), 'eleven byte');
  refused(join(dir, 'eleven'), /is 0\.0 MiB, more than the 0\.0 MiB/, 10);
  assert.equal(readBoundedFile(join(dir, 'eleven'), 11).toString(), 'eleven byte');
  assert.throws(() => readBoundedFile(join(dir, 'missing'), 10), { code: 'ENOENT' });
});

test('the CLI refuses such files as configs at once with status 1 instead of hanging or running out of memory', () => {
  const dir = scratch();
  const pipe = fifo(dir);
  const cases: [string, RegExp][] = [
    ['/dev/zero', /\/dev\/zero is a character device, not a file/],
    [dir, /is a directory, not a file/],
    [sparse(dir, 2 ** 30), /is 1024\.0 MiB, more than the 64\.0 MiB such a file may have/],
    ...(pipe ? ([[pipe, /is a named pipe, not a file/]] as [string, RegExp][]) : []),
  ];
  for (const [path, message] of cases) {
    const r = spawnSync(process.execPath, [cli, 'train', '--config', path, '--steps', '1'], { timeout: 30_000 });
    assert.equal(r.signal, null, `train --config ${path} was killed (hung?)`);
    assert.equal(r.status, 1, `train --config ${path}: ${r.stderr}`);
    assert.match(r.stderr.toString(), message);
  }
  // A model named to the planner as a file.
  const r = spawnSync(process.execPath, [cli, 'plan', '/dev/zero'], { timeout: 30_000 });
  assert.equal(r.status, 1, `plan /dev/zero: ${r.stderr}`);
  assert.match(r.stderr.toString(), /\/dev\/zero is a character device, not a file/);
});

test('weights and token shards named as a pipe or a device are refused at once, not waited on', (t) => {
  const pipe = fifo(scratch());
  if (!pipe) return t.skip('no mkfifo on this system');
  for (const path of [pipe, '/dev/zero']) {
    assert.throws(() => SafetensorsReader.open(path), /not a regular file/);
    assert.throws(() => TokenShard.open(path), /token shard .* is not a regular file/);
  }
});
