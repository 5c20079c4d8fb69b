import '../../src/engine/index.js';
import { mkdtemp, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenizeToDataset } from '../../src/data/tokenize-dataset.js';
import { DEFAULT_CONFIG, type TrainConfig } from '../../src/train/config.js';

export async function tempDir(prefix = 'andromeda-train-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A small byte-tokenized dataset (train + held-out) in a temporary directory. */
export async function smallDataset(): Promise<string> {
  const root = await tempDir('andromeda-ds-');
  const input = join(root, 'text');
  await mkdir(input);
  const words = [
    'the',
    'whale',
    'sea',
    'ship',
    'captain',
    'white',
    'deep',
    'harpoon',
    'sails',
    'wind',
    'const',
    'x',
    '=',
    '1;',
  ];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let d = 0; d < 40; d++) {
    const n = 30 + Math.floor(next() * 40);
    const text = Array.from({ length: n }, () => words[Math.floor(next() * words.length)]).join(' ') + '.\n';
    await writeFile(join(input, `doc-${String(d).padStart(2, '0')}.txt`), text);
  }
  const out = join(root, 'ds');
  await tokenizeToDataset({
    inputs: [input],
    tokenizer: 'byte',
    outDir: out,
    valFraction: 0.2,
    progress: false,
    log: () => {},
  });
  return out;
}

export function toyConfig(data: string, out: string, overrides: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...DEFAULT_CONFIG,
    data: [data],
    preset: 'toy',
    out,
    device: 'cpu',
    steps: 12,
    batchSize: 4,
    seqLen: 16,
    lr: 3e-3,
    warmup: 2,
    evalEvery: 6,
    evalTokens: 256,
    finalEvalTokens: 0,
    checkpointEvery: 6,
    ...overrides,
  };
}

export const quiet = { log: () => {}, progress: false };
