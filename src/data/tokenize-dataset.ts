/**
 * Text → tokenized dataset directory (see dataset.ts): the work behind `andromeda tokenize`,
 * usable from code too. Documents stream through; only the tokenizer and a shard buffer are
 * held in memory. BPE training, when asked for, reads the training split in a first pass.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DATASET_FORMAT,
  DATASET_TOKENIZER,
  DATASET_VERSION,
  SplitWriter,
  writeDatasetManifest,
  type DatasetManifest,
} from './dataset.js';
import { defaultCorpusDir, defaultCorpusDocuments, defaultCorpusManifest } from './default-corpus.js';
import { formatBytes, formatCount, ProgressBar } from './progress-bar.js';
import { dtypeForVocab } from './shards.js';
import { listInputFiles, readInputFile, type ReadOptions } from './sources.js';
import { ByteTokenizer } from './tokenizer/byte.js';
import { trainBpe } from './tokenizer/bpe-train.js';
import { loadTokenizer } from './tokenizer/load.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

export interface TokenizeDatasetOptions {
  /** Files and directories; empty means the embedded default corpus with its fixed held-out split. */
  inputs: readonly string[];
  /** "byte", "bpe:<vocab size>", a tokenizer file path, or a ready tokenizer. */
  tokenizer: string | Tokenizer;
  outDir: string;
  jsonlField?: string;
  /** Tokens per shard file. Default 100M. */
  shardTokens?: number;
  /** Fraction of documents held out (spread evenly: every 1/f-th document). Default 0.01. */
  valFraction?: number;
  /** Cap on UTF-16 code units of text read for BPE training. Default 200M. */
  bpeTrainChars?: number;
  /** End-of-document token for Hugging Face tokenizers. */
  eosToken?: string;
  /** Draw progress bars on stderr. Default true. */
  progress?: boolean;
  /** Informational lines (default: stderr). */
  log?: (line: string) => void;
}

interface SplitDocument {
  text: string;
  /** The exact bytes, when the source has them (text files). */
  bytes?: Uint8Array;
  split: 'train' | 'val';
}

/** Document i is held out when floor((i + 1) f) > floor(i f): exactly round(n f) of n, evenly spread. */
export function isHeldOut(index: number, fraction: number): boolean {
  return Math.floor((index + 1) * fraction) > Math.floor(index * fraction);
}

export async function tokenizeToDataset(options: TokenizeDatasetOptions): Promise<DatasetManifest> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const showProgress = options.progress ?? true;
  const valFraction = options.valFraction ?? 0.01;
  if (!(valFraction >= 0 && valFraction < 1))
    throw new Error(`validation fraction must be in [0, 1), got ${valFraction}`);
  const shardTokens = options.shardTokens ?? 100_000_000;

  const useDefaultCorpus = options.inputs.length === 0;
  const files = useDefaultCorpus ? [] : await listInputFiles(options.inputs);
  if (!useDefaultCorpus && files.length === 0) throw new Error(`no input files found in ${options.inputs.join(', ')}`);
  const totalBytes = useDefaultCorpus
    ? defaultCorpusManifest().sources.reduce((n, s) => n + s.bytes.train + s.bytes.val, 0)
    : files.reduce((n, f) => n + f.bytes, 0);
  if (useDefaultCorpus)
    log(`no inputs given: using the default corpus in ${defaultCorpusDir()} (fixed held-out split)`);

  const documents = async function* (onBytes: (n: number) => void): AsyncGenerator<SplitDocument> {
    if (useDefaultCorpus) {
      for await (const doc of defaultCorpusDocuments()) {
        onBytes(Buffer.byteLength(doc.text));
        yield { text: doc.text, split: doc.split };
      }
      return;
    }
    const readOptions: ReadOptions = {
      jsonlField: options.jsonlField,
      onBytes,
      onSkip: (path, reason) => log(`skipping ${path}: ${reason}`),
    };
    let index = 0;
    for (const file of files) {
      for await (const doc of readInputFile(file, readOptions)) {
        yield { text: doc.text, bytes: doc.bytes, split: isHeldOut(index++, valFraction) ? 'val' : 'train' };
      }
    }
  };

  const tokenizer = await resolveTokenizer(
    options,
    async function* () {
      const bar = showProgress ? new ProgressBar({ label: 'reading text for BPE', total: totalBytes }) : null;
      let read = 0;
      try {
        for await (const doc of documents((n) => bar?.update((read += n)))) if (doc.split === 'train') yield doc.text;
      } finally {
        bar?.finish();
      }
    },
    log,
  );

  await mkdir(options.outDir, { recursive: true });
  await removeOldShards(options.outDir);
  const writerOptions = { vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId, shardTokens };
  const writers = {
    train: new SplitWriter(options.outDir, 'train', writerOptions),
    val: new SplitWriter(options.outDir, 'val', writerOptions),
  };
  const bar = showProgress ? new ProgressBar({ label: 'tokenizing', total: totalBytes }) : null;
  let read = 0;
  let tokens = 0;
  for await (const doc of documents((n) => (read += n))) {
    // Exact bytes where the source has them (text files), so invalid UTF-8 is tokenized without loss.
    const ids = doc.bytes ? tokenizer.encodeBytes(doc.bytes) : tokenizer.encode(doc.text);
    writers[doc.split].writeDocument(ids, doc.bytes?.length ?? Buffer.byteLength(doc.text));
    tokens += ids.length + 1;
    bar?.update(read, `${formatCount(tokens)} tokens`);
  }
  bar?.finish(`${formatCount(tokens)} tokens`);

  const splits = { train: writers.train.finish(), val: writers.val.finish() };
  await tokenizer.save(join(options.outDir, DATASET_TOKENIZER));
  const manifest: DatasetManifest = {
    format: DATASET_FORMAT,
    version: DATASET_VERSION,
    tokenizer: DATASET_TOKENIZER,
    vocabSize: tokenizer.vocabSize,
    eosId: tokenizer.eosId,
    dtype: dtypeForVocab(tokenizer.vocabSize),
    splits,
    inputs: useDefaultCorpus ? ['(default corpus)'] : [...options.inputs],
  };
  await writeDatasetManifest(options.outDir, manifest);
  for (const [name, s] of Object.entries(splits)) {
    const ratio = s.tokens > 0 ? (s.textBytes / s.tokens).toFixed(2) : '-';
    log(
      `${name}: ${s.documents} documents, ${formatCount(s.tokens)} tokens in ${s.shards.length} shard(s), ` +
        `${formatBytes(s.textBytes)} of text (${ratio} bytes/token)`,
    );
  }
  log(`wrote ${options.outDir} (${tokenizer.kind} tokenizer, vocab ${tokenizer.vocabSize}, eos ${tokenizer.eosId})`);
  return manifest;
}

/** Builds the tokenizer named by `spec`; BPE is trained on `trainingTexts`. */
export async function resolveTokenizer(
  options: Pick<TokenizeDatasetOptions, 'tokenizer' | 'bpeTrainChars' | 'eosToken' | 'progress'>,
  trainingTexts: () => AsyncIterable<string>,
  log: (line: string) => void = () => {},
): Promise<Tokenizer> {
  const spec = options.tokenizer;
  if (typeof spec !== 'string') return spec;
  if (spec === 'byte') return new ByteTokenizer();
  const bpe = /^bpe:(\d+)$/.exec(spec);
  if (bpe) {
    const vocabSize = Number(bpe[1]);
    const started = Date.now();
    const progress: { bar?: ProgressBar } = {};
    const tokenizer = await trainBpe(trainingTexts(), {
      vocabSize,
      maxTrainChars: options.bpeTrainChars ?? 200_000_000,
      onProgress: (done, total) => {
        if (options.progress ?? true)
          progress.bar ??= new ProgressBar({ label: 'learning BPE merges', total, format: formatCount });
        progress.bar?.update(done);
      },
    });
    progress.bar?.finish();
    log(
      `trained BPE: ${tokenizer.merges.length} merges, ` +
        `vocab ${tokenizer.vocabSize}, ${((Date.now() - started) / 1000).toFixed(1)}s`,
    );
    return tokenizer;
  }
  if (spec.startsWith('bpe')) throw new Error(`bad tokenizer "${spec}": write bpe:<vocab size>, e.g. bpe:8192`);
  return loadTokenizer(spec, { eosToken: options.eosToken });
}

/** Removes shard files of an earlier run so the directory holds exactly what the new manifest lists. */
async function removeOldShards(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (/^(train|val)-\d{5}\.bin(\.partial)?$/.test(name)) await rm(join(dir, name));
  }
}
