/**
 * A tokenized dataset directory as written by `andromeda tokenize`:
 *
 *   dataset.json          manifest (this file's DatasetManifest)
 *   tokenizer.json        the tokenizer used
 *   train-00000.bin ...   token shards of the training split
 *   val-00000.bin ...     token shards of the held-out split
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { dtypeForVocab, ShardSequence, TokenShardWriter, type TokenDType } from './shards.js';
import { loadTokenizer } from './tokenizer/load.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import { readJsonFile } from '../io/bounded-read.js';

export const DATASET_FORMAT = 'andromeda-token-dataset';
export const DATASET_VERSION = 1;
export const DATASET_MANIFEST = 'dataset.json';
export const DATASET_TOKENIZER = 'tokenizer.json';

export interface ShardEntry {
  file: string;
  tokens: number;
  documents: number;
}

export interface SplitManifest {
  shards: ShardEntry[];
  tokens: number;
  documents: number;
  /** UTF-8 bytes of the documents' text, for bits-per-byte. */
  textBytes: number;
}

export interface DatasetManifest {
  format: typeof DATASET_FORMAT;
  version: number;
  tokenizer: string;
  vocabSize: number;
  eosId: number;
  dtype: TokenDType;
  splits: Record<string, SplitManifest>;
  /** Free-form description of where the text came from. */
  inputs: string[];
}

export interface SplitWriterOptions {
  vocabSize: number;
  eosId: number;
  /** Tokens per shard file (the last one may hold fewer). */
  shardTokens: number;
}

/** Writes one split's documents into numbered shards, each document followed by EOS. */
export class SplitWriter {
  private current: TokenShardWriter | null = null;
  private readonly finished: ShardEntry[] = [];
  private documents = 0;
  private textBytes = 0;
  private readonly dtype: TokenDType;

  constructor(
    readonly dir: string,
    readonly split: string,
    readonly options: SplitWriterOptions,
  ) {
    if (!Number.isInteger(options.shardTokens) || options.shardTokens < 1)
      throw new Error(`shard size must be a positive number of tokens, got ${options.shardTokens}`);
    this.dtype = dtypeForVocab(options.vocabSize);
  }

  get tokens(): number {
    return this.finished.reduce((n, s) => n + s.tokens, 0) + (this.current?.tokens ?? 0);
  }

  writeDocument(ids: Int32Array, textBytes: number): void {
    const withEos = new Int32Array(ids.length + 1);
    withEos.set(ids);
    withEos[ids.length] = this.options.eosId;
    let offset = 0;
    while (offset < withEos.length) {
      const shard = this.current ?? this.openShard();
      const take = Math.min(withEos.length - offset, this.options.shardTokens - shard.tokens);
      shard.write(withEos.subarray(offset, offset + take));
      offset += take;
      if (shard.tokens >= this.options.shardTokens) this.closeShard();
    }
    this.documents++;
    this.textBytes += textBytes;
  }

  finish(): SplitManifest {
    if (this.current) this.closeShard();
    return { shards: this.finished, tokens: this.tokens, documents: this.documents, textBytes: this.textBytes };
  }

  private openShard(): TokenShardWriter {
    const file = `${this.split}-${String(this.finished.length).padStart(5, '0')}.bin`;
    this.current = new TokenShardWriter(join(this.dir, file), {
      dtype: this.dtype,
      vocabSize: this.options.vocabSize,
      eosId: this.options.eosId,
    });
    return this.current;
  }

  private closeShard(): void {
    const shard = this.current as TokenShardWriter;
    const header = shard.close();
    this.finished.push({
      file: shard.path.slice(this.dir.length + 1),
      tokens: header.tokenCount,
      documents: header.documentCount,
    });
    this.current = null;
  }
}

export async function writeDatasetManifest(dir: string, manifest: DatasetManifest): Promise<void> {
  await writeFile(join(dir, DATASET_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
}

export async function readDatasetManifest(dir: string): Promise<DatasetManifest> {
  const path = join(dir, DATASET_MANIFEST);
  let manifest: DatasetManifest;
  try {
    manifest = readJsonFile(path) as DatasetManifest;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `${dir} is not a tokenized dataset (no ${DATASET_MANIFEST}); create one with \`andromeda tokenize\``
        : `${path}: ${(error as Error).message}`,
    );
  }
  if (manifest.format !== DATASET_FORMAT) throw new Error(`${path}: not an Andromeda token dataset manifest`);
  if (manifest.version !== DATASET_VERSION)
    throw new Error(
      `${path}: dataset format version ${manifest.version} is not supported (expected ${DATASET_VERSION})`,
    );
  return manifest;
}

/** An opened dataset directory: its manifest, tokenizer and splits as token streams. */
export class TokenDataset {
  private readonly open = new Map<string, ShardSequence>();

  private constructor(
    readonly dir: string,
    readonly manifest: DatasetManifest,
    readonly tokenizer: Tokenizer,
  ) {}

  static async open(dir: string): Promise<TokenDataset> {
    const manifest = await readDatasetManifest(dir);
    const tokenizer = await loadTokenizer(join(dir, manifest.tokenizer));
    if (tokenizer.vocabSize !== manifest.vocabSize || tokenizer.eosId !== manifest.eosId) {
      throw new Error(
        `${dir}: tokenizer (vocab ${tokenizer.vocabSize}, eos ${tokenizer.eosId}) does not match the manifest ` +
          `(vocab ${manifest.vocabSize}, eos ${manifest.eosId})`,
      );
    }
    return new TokenDataset(dir, manifest, tokenizer);
  }

  get splitNames(): string[] {
    return Object.keys(this.manifest.splits);
  }

  /** The split's shards as one token stream (opened once, checked against the manifest). */
  split(name: string): ShardSequence {
    const cached = this.open.get(name);
    if (cached) return cached;
    const entry = this.splitManifest(name);
    const sequence = ShardSequence.open(entry.shards.map((s) => join(this.dir, s.file)));
    sequence.shards.forEach((shard, i) => {
      const expected = entry.shards[i];
      if (
        shard.header.tokenCount !== expected.tokens ||
        shard.header.vocabSize !== this.manifest.vocabSize ||
        shard.header.eosId !== this.manifest.eosId
      ) {
        sequence.close();
        throw new Error(
          `token shard ${shard.path} does not match ${DATASET_MANIFEST} (${shard.header.tokenCount} tokens, ` +
            `expected ${expected.tokens})`,
        );
      }
    });
    this.open.set(name, sequence);
    return sequence;
  }

  splitManifest(name: string): SplitManifest {
    const entry = this.manifest.splits[name];
    if (!entry) throw new Error(`${this.dir} has no "${name}" split (it has: ${this.splitNames.join(', ') || 'none'})`);
    return entry;
  }

  /** Checks every shard's checksum and contents (reads all data once). */
  verify(): void {
    for (const name of this.splitNames) for (const shard of this.split(name).shards) shard.verify();
  }

  close(): void {
    for (const s of this.open.values()) s.close();
    this.open.clear();
  }
}
