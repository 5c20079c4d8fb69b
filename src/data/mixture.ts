/**
 * A deterministic, resumable batch loader over weighted named sources (e.g. books, web, code).
 *
 * Each source is a token stream cut into rows of seqLen + 1 tokens (overlapping by one). Every
 * epoch of a source starts the rows at a different offset in [0, seqLen) and visits them in a
 * fresh random order; both depend only on (seed, source name, epoch). For every row of a batch
 * the source is drawn with probability proportional to its weight, and that source's next row
 * is taken; a source that runs out starts its next epoch, so small sources repeat. All state is
 * a few integers (`state()`), and a loader built from that state yields the same batches as the
 * original would have.
 */
import { type Batch, makeBatch, rowCount } from './packing.js';
import { hashString32, randomPermutation, Rng, type RngState } from './random.js';
import type { TokenSource } from './token-source.js';

export interface MixtureSource {
  name: string;
  tokens: TokenSource;
  /** Relative sampling weight, > 0. Default 1. */
  weight?: number;
}

export interface MixtureLoaderOptions {
  sources: readonly MixtureSource[];
  seqLen: number;
  batchSize: number;
  eosId: number;
  seed: number;
  /** Segment ids and positions reset at document boundaries. Default true. */
  segments?: boolean;
}

export interface MixtureLoaderState {
  version: 1;
  seed: number;
  seqLen: number;
  batchSize: number;
  /** Batches produced so far. */
  step: number;
  rng: RngState;
  sources: Array<{ name: string; tokens: number; epoch: number; cursor: number }>;
}

export interface MixtureBatch extends Batch {
  /** [batchSize] index into the loader's sources for each row. */
  sourceIndex: Int32Array;
}

interface SourceCursor {
  source: MixtureSource;
  epoch: number;
  /** Rows of the current epoch already taken. */
  cursor: number;
  order: Uint32Array;
  offset: number;
}

export class MixtureLoader {
  private readonly cursors: SourceCursor[];
  private readonly cumulativeWeights: number[];
  private readonly rng: Rng;
  private step: number;

  constructor(
    private readonly options: MixtureLoaderOptions,
    resumeFrom?: MixtureLoaderState,
  ) {
    const { sources, seqLen, batchSize, seed } = options;
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`seqLen must be a positive integer, got ${seqLen}`);
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
    if (sources.length === 0) throw new Error('a mixture needs at least one source');
    const names = new Set<string>();
    let total = 0;
    this.cumulativeWeights = sources.map((s) => {
      if (names.has(s.name)) throw new Error(`mixture source name "${s.name}" is used twice`);
      names.add(s.name);
      const weight = s.weight ?? 1;
      if (!(weight > 0 && Number.isFinite(weight)))
        throw new Error(`mixture source "${s.name}" has weight ${weight}; weights must be positive`);
      if (rowCount(s.tokens.length, seqLen) === 0)
        throw new Error(
          `mixture source "${s.name}" has ${s.tokens.length} tokens, fewer than seqLen + 1 = ${seqLen + 1}`,
        );
      return (total += weight);
    });

    if (resumeFrom) this.checkResumable(resumeFrom);
    this.rng = new Rng(resumeFrom ? resumeFrom.rng : seed);
    this.step = resumeFrom?.step ?? 0;
    this.cursors = sources.map((source, i) => {
      const saved = resumeFrom?.sources[i];
      const cursor: SourceCursor = { source, epoch: 0, cursor: 0, order: new Uint32Array(0), offset: 0 };
      this.startEpoch(cursor, saved?.epoch ?? 0);
      cursor.cursor = saved?.cursor ?? 0;
      if (cursor.cursor > cursor.order.length)
        throw new Error(
          `cannot resume: source "${source.name}" cursor ${cursor.cursor} is past its ${cursor.order.length} rows`,
        );
      return cursor;
    });
  }

  get sourceNames(): string[] {
    return this.cursors.map((c) => c.source.name);
  }

  /** Batches produced so far. */
  get steps(): number {
    return this.step;
  }

  /** Epochs completed by each source, with the fraction of the current one. */
  epochs(): Record<string, number> {
    return Object.fromEntries(this.cursors.map((c) => [c.source.name, c.epoch + c.cursor / c.order.length]));
  }

  next(): MixtureBatch {
    const { seqLen, batchSize } = this.options;
    const rows: Int32Array[] = [];
    const sourceIndex = new Int32Array(batchSize);
    for (let r = 0; r < batchSize; r++) {
      const s = this.pickSource();
      sourceIndex[r] = s;
      const cursor = this.cursors[s];
      if (cursor.cursor === cursor.order.length) this.startEpoch(cursor, cursor.epoch + 1);
      const row = cursor.order[cursor.cursor++];
      rows.push(cursor.source.tokens.read(cursor.offset + row * seqLen, seqLen + 1));
    }
    this.step++;
    return { ...makeBatch(rows, this.options), sourceIndex };
  }

  /** JSON-serializable; pass it to the constructor (with the same sources) to continue exactly here. */
  state(): MixtureLoaderState {
    const { seed, seqLen, batchSize } = this.options;
    return {
      version: 1,
      seed,
      seqLen,
      batchSize,
      step: this.step,
      rng: this.rng.state(),
      sources: this.cursors.map((c) => ({
        name: c.source.name,
        tokens: c.source.tokens.length,
        epoch: c.epoch,
        cursor: c.cursor,
      })),
    };
  }

  private pickSource(): number {
    if (this.cursors.length === 1) return 0;
    const x = this.rng.nextFloat() * this.cumulativeWeights[this.cumulativeWeights.length - 1];
    const i = this.cumulativeWeights.findIndex((w) => x < w);
    return i < 0 ? this.cumulativeWeights.length - 1 : i;
  }

  private startEpoch(cursor: SourceCursor, epoch: number): void {
    const { seed, seqLen } = this.options;
    const epochRng = new Rng(hashString32(`${cursor.source.name}\u0000${epoch}`, seed >>> 0));
    cursor.epoch = epoch;
    cursor.cursor = 0;
    const length = cursor.source.tokens.length;
    // Epochs after the first shift the row boundaries by up to seqLen - 1 tokens, keeping at least one row.
    cursor.offset = epoch === 0 ? 0 : epochRng.nextInt(Math.min(seqLen, length - seqLen));
    cursor.order = randomPermutation(rowCount(length - cursor.offset, seqLen), epochRng);
  }

  private checkResumable(state: MixtureLoaderState): void {
    const { seed, seqLen, batchSize, sources } = this.options;
    const problems: string[] = [];
    if (state.version !== 1) problems.push(`state version ${state.version} is not supported`);
    if (state.seed !== seed) problems.push(`seed ${state.seed} ≠ ${seed}`);
    if (state.seqLen !== seqLen) problems.push(`seqLen ${state.seqLen} ≠ ${seqLen}`);
    if (state.batchSize !== batchSize) problems.push(`batchSize ${state.batchSize} ≠ ${batchSize}`);
    const savedNames = state.sources.map((s) => s.name).join(', ');
    const names = sources.map((s) => s.name).join(', ');
    if (savedNames !== names) problems.push(`sources [${savedNames}] ≠ [${names}]`);
    else
      state.sources.forEach((s, i) => {
        if (s.tokens !== sources[i].tokens.length)
          problems.push(`source "${s.name}" had ${s.tokens} tokens, now ${sources[i].tokens.length}`);
      });
    if (problems.length > 0) throw new Error(`cannot resume the data loader from this state: ${problems.join('; ')}`);
  }
}
