/**
 * What a trainer needs from the data side, in one object: the tokenizer, named weighted
 * training streams, a held-out stream with its text size (for bits per byte), a resumable
 * batch loader, held-out batches and the unigram baseline.
 */
import { join } from 'node:path';
import { TokenDataset } from './dataset.js';
import { defaultCorpusDocuments, defaultCorpusManifest } from './default-corpus.js';
import { unigramCrossEntropy } from './loss-units.js';
import { MixtureLoader, type MixtureLoaderState, type MixtureSource } from './mixture.js';
import { type Batch, sequentialBatches, tokenizeToArray } from './packing.js';
import { ArrayTokenSource, ConcatTokenSource, type TokenSource } from './token-source.js';
import { resolveTokenizer } from './tokenize-dataset.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

export interface LoaderSettings {
  seqLen: number;
  batchSize: number;
  seed: number;
  /** Segment ids/positions reset at document boundaries. Default true. */
  segments?: boolean;
}

export class TrainingData {
  readonly heldOut: TokenSource;

  constructor(
    readonly tokenizer: Tokenizer,
    /** Training streams, one per named source, with mixture weights. */
    readonly sources: readonly MixtureSource[],
    heldOutParts: readonly TokenSource[],
    /** UTF-8 bytes of the held-out documents. */
    readonly heldOutTextBytes: number,
    private readonly onClose: () => void = () => {},
  ) {
    this.heldOut = new ConcatTokenSource(heldOutParts);
  }

  /** Held-out text bytes per held-out token: bits/byte = loss / (ln 2 × this). */
  get heldOutBytesPerToken(): number {
    return this.heldOut.length > 0 ? this.heldOutTextBytes / this.heldOut.length : 0;
  }

  /** A deterministic loader over the training mixture; pass a saved `state()` to resume. */
  createLoader(settings: LoaderSettings, resumeFrom?: MixtureLoaderState): MixtureLoader {
    return new MixtureLoader({ ...settings, sources: this.sources, eosId: this.tokenizer.eosId }, resumeFrom);
  }

  /** Consecutive held-out rows in a fixed order (the same every call). */
  heldOutBatches(
    settings: Omit<LoaderSettings, 'seed'> & { maxBatches?: number; dropLast?: boolean },
  ): Generator<Batch> {
    return sequentialBatches(this.heldOut, { ...settings, eosId: this.tokenizer.eosId });
  }

  /** Add-one-smoothed unigram cross-entropy (nats/token) of the held-out stream under the training streams. */
  unigramBaseline(): number {
    return unigramCrossEntropy(
      new ConcatTokenSource(this.sources.map((s) => s.tokens)),
      this.heldOut,
      this.tokenizer.vocabSize,
    );
  }

  close(): void {
    this.onClose();
  }
}

export interface DatasetSpec {
  /** Mixture component name, e.g. "books". Default: the directory name. */
  name?: string;
  /** A directory written by `andromeda tokenize`. */
  dir: string;
  weight?: number;
}

/**
 * Opens tokenized dataset directories as one mixture. All must use the same tokenizer; their
 * "train" splits become the weighted sources and their "val" splits the held-out stream.
 */
export async function openTrainingData(specs: readonly DatasetSpec[]): Promise<TrainingData> {
  if (specs.length === 0) throw new Error('openTrainingData needs at least one dataset directory');
  const datasets: TokenDataset[] = [];
  try {
    for (const spec of specs) datasets.push(await TokenDataset.open(spec.dir));
    const reference = JSON.stringify(datasets[0].tokenizer.toJSON());
    datasets.forEach((d, i) => {
      if (JSON.stringify(d.tokenizer.toJSON()) !== reference) {
        throw new Error(
          `${specs[i].dir} was tokenized with a different tokenizer than ${specs[0].dir}; a mixture needs one ` +
            `tokenizer`,
        );
      }
    });
    const sources = datasets.map((d, i) => ({
      name: specs[i].name ?? baseName(specs[i].dir),
      tokens: d.split('train'),
      weight: specs[i].weight,
    }));
    const heldOut = datasets.filter((d) => d.manifest.splits.val).map((d) => d.split('val'));
    const heldOutBytes = datasets.reduce((n, d) => n + (d.manifest.splits.val?.textBytes ?? 0), 0);
    return new TrainingData(datasets[0].tokenizer, sources, heldOut, heldOutBytes, () =>
      datasets.forEach((d) => d.close()),
    );
  } catch (error) {
    datasets.forEach((d) => d.close());
    throw error;
  }
}

/**
 * The embedded default corpus tokenized in memory (a few MB; seconds): sources "prose" and
 * "code" weighted by `weights` (default 3:1), held out by the corpus's fixed split.
 * `tokenizer` is a ready tokenizer, "byte", "bpe:<vocab size>" (trained on the training split) or a path.
 */
export async function defaultCorpusTrainingData(
  tokenizer: Tokenizer | string = 'byte',
  weights: Record<string, number> = { prose: 3, code: 1 },
): Promise<TrainingData> {
  const resolved = await resolveTokenizer({ tokenizer, progress: false }, async function* () {
    for await (const doc of defaultCorpusDocuments({ split: 'train' })) yield doc.text;
  });
  const groups = [...new Set(defaultCorpusManifest().sources.map((s) => s.group))];
  const sources: MixtureSource[] = [];
  const heldOut: TokenSource[] = [];
  let heldOutBytes = 0;
  for (const group of groups) {
    const train = await tokenizeToArray(defaultCorpusDocuments({ split: 'train', groups: [group] }), resolved);
    const val = await tokenizeToArray(defaultCorpusDocuments({ split: 'val', groups: [group] }), resolved);
    sources.push({ name: group, tokens: new ArrayTokenSource(train.tokens), weight: weights[group] ?? 1 });
    heldOut.push(new ArrayTokenSource(val.tokens));
    heldOutBytes += val.textBytes;
  }
  return new TrainingData(resolved, sources, heldOut, heldOutBytes);
}

function baseName(dir: string): string {
  return join(dir).replace(/\/+$/, '').split('/').pop() || dir;
}
