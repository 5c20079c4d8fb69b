/**
 * The default corpus embedded in the package (corpus/ at the package root): public-domain
 * English prose and Apache-2.0 TypeScript declarations, with a fixed held-out split.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJsonlFile, type Document } from './sources.js';

export type CorpusSplit = 'train' | 'val';

export interface DefaultCorpusSource {
  name: string;
  /** "prose" or "code": natural mixture components. */
  group: string;
  package: string;
  license: string;
  files: Record<CorpusSplit, string>;
  documents: Record<CorpusSplit, number>;
  bytes: Record<CorpusSplit, number>;
}

export interface DefaultCorpusManifest {
  format: 'andromeda-default-corpus';
  version: number;
  heldOut: string;
  sources: DefaultCorpusSource[];
}

export interface CorpusDocument extends Document {
  source: string;
  group: string;
  split: CorpusSplit;
}

/**
 * The corpus folder of the installed package. This module runs from src/data (sources) or
 * dist/src/data (compiled), so the package root is found by walking up to a corpus/manifest.json.
 */
export function defaultCorpusDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'corpus');
    if (existsSync(join(candidate, 'manifest.json'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(
        `default corpus not found: no corpus/manifest.json above ${dirname(fileURLToPath(import.meta.url))}`,
      );
    dir = parent;
  }
}

export function defaultCorpusManifest(): DefaultCorpusManifest {
  const path = join(defaultCorpusDir(), 'manifest.json');
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as DefaultCorpusManifest;
  if (manifest.format !== 'andromeda-default-corpus') throw new Error(`${path} is not a default-corpus manifest`);
  return manifest;
}

export interface DefaultCorpusQuery {
  /** "train", "val" or both (default). */
  split?: CorpusSplit | 'all';
  /** Only these groups ("prose", "code"). Default: all. */
  groups?: readonly string[];
  /** Only these sources by name. Default: all. */
  sources?: readonly string[];
}

/** Streams the corpus documents: for each source in manifest order, its train then held-out documents. */
export async function* defaultCorpusDocuments(query: DefaultCorpusQuery = {}): AsyncGenerator<CorpusDocument> {
  const dir = defaultCorpusDir();
  const splits: CorpusSplit[] = query.split === undefined || query.split === 'all' ? ['train', 'val'] : [query.split];
  for (const source of defaultCorpusManifest().sources) {
    if (query.groups && !query.groups.includes(source.group)) continue;
    if (query.sources && !query.sources.includes(source.name)) continue;
    for (const split of splits) {
      for await (const doc of readJsonlFile(join(dir, source.files[split]), { jsonlIdField: 'id' })) {
        yield { ...doc, source: source.name, group: source.group, split };
      }
    }
  }
}
