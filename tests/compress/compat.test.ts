// Files written by earlier builds keep decoding: tests/fixtures/compress/ holds a 1,500-byte text and online-mode
// files coded from it by earlier builds (named <commit or date>.<mix|mixoff>.<isa>.andz), on the AVX2 engine
// (the one every x86-64 machine this runs on has). A change that alters what an online model computes, or how
// its identity is hashed (a new model config field, a new coding default), fails here instead of leaving users
// with archives that no longer open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getEngine, type CpuEngine } from '../../src/index.js';
import { tempDir } from '../train/helpers.js';

const fixtures = fileURLToPath(new URL('../../../tests/fixtures/compress/', import.meta.url));
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const original = readFileSync(join(fixtures, 'moby-1500.txt'));
const files = readdirSync(fixtures).filter((f) => f.endsWith('.avx2.andz'));

const isa = process.arch === 'x64' ? (getEngine('cpu') as CpuEngine).cpuInfo().cpuIsa : null;
const skip = isa === null || isa === 'generic' ? `the fixtures were coded on AVX2, which this CPU lacks` : false;

test('the fixtures cover an earlier build and the current format, mixed and model-only', () => {
  assert.ok(files.some((f) => f.includes('.mixoff.')) && files.some((f) => f.includes('.mix.')), files.join(', '));
  assert.ok(new Set(files.map((f) => f.split('.')[1])).size >= 2, `files of at least two builds: ${files.join(', ')}`);
});

for (const file of files)
  test(`${file} decodes to the original bytes`, { skip }, async () => {
    const out = join(await tempDir('andromeda-compat-'), 'restored');
    const r = spawnSync(process.execPath, [cli, 'decompress', join(fixtures, file), out], {
      encoding: 'utf8',
      env: { ...process.env, ANDROMEDA_CPU_ISA: 'avx2', ANDROMEDA_THREADS: '2' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(readFileSync(out).equals(original), `${file}: the restored bytes differ from the original`);
  });
