/**
 * One step of the paged forward: a ragged batch of sequences, each bringing some new tokens (a prompt
 * chunk, one decode token, or a draft to verify) on top of the positions already in the paged cache.
 * Rows of the step are the sequences' new tokens one after another; everything that changes from step
 * to step is an int32 device tensor, so the forward reads nothing back and a decode step can be
 * captured as a CUDA graph and replayed with new values uploaded into the same tensors.
 *
 * `buildPagedStep` makes a step from host arrays (tests, prefill, speculative decoding); the inference
 * engine may fill its own persistent tensors instead, as long as they follow the same layout.
 */
import { Tensor } from '../tensor/tensor.js';
import { formatShape } from '../tensor/shape.js';
import type { PagedBatch } from '../ops/paged.js';

/**
 * The sequences of a step (the paged ops' batch, src/ops/paged.ts, without the block size, which is the
 * cache's): host bounds that fix the launches, device tensors that vary. numSeqs is queryStart's length − 1,
 * maxBlocksPerSeq the width of blockTables.
 */
export interface PagedStepBatch extends Omit<PagedBatch, 'blockSize'> {
  /** The contract's host bounds; optional, as the tensors' shapes carry them (checked against them when given). */
  readonly numSeqs?: number;
  readonly maxBlocksPerSeq?: number;
  /**
   * queryStart, contextLens and blockTables on the host, when the caller has them. Only then may the forward
   * route a sequence with many query rows through the dense attention (its gather rows are computed on the
   * host); without them every sequence takes the paged kernel.
   */
  readonly host?: PagedBatchHost;
}

export interface PagedBatchHost {
  readonly queryStart: Int32Array;
  readonly contextLens: Int32Array;
  readonly blockTables: Int32Array;
}

export interface PagedStep {
  /** int32 [T]: the new tokens of every sequence, in batch order. */
  tokens: Tensor;
  batch: PagedStepBatch;
  /** int32 [T]: the pool row (block · blockSize + offset) of every new position; K/V are written there. */
  slots: Tensor;
  /** int32 [R]: the rows of T whose logits are wanted (e.g. each sequence's last row). */
  logitRows: Tensor;
}

/** One sequence's part of a step built on the host. */
export interface PagedSequenceChunk {
  /** The tokens this step adds. */
  readonly tokens: ArrayLike<number>;
  /** Positions already in the cache (the new tokens take positions cached .. cached + tokens.length − 1). */
  readonly cached: number;
  /** Pool blocks of the sequence in position order, enough for cached + tokens.length positions. */
  readonly blockTable: ArrayLike<number>;
}

export interface BuildPagedStepOptions {
  blockSize: number;
  device?: string;
  /** Which rows get logits: each sequence's last new row (default) or every row (verification, tests). */
  logits?: 'last' | 'all';
  /** Width of the block tables (default: the longest table given). */
  maxBlocksPerSeq?: number;
}

/** A step and the tensors it uploaded; dispose() frees them. */
export interface OwnedPagedStep extends PagedStep {
  dispose(): void;
}

/** Uploads a step for `chunks`, one per sequence, checking every index on the host first. */
export function buildPagedStep(chunks: readonly PagedSequenceChunk[], o: BuildPagedStepOptions): OwnedPagedStep {
  const what = 'buildPagedStep';
  const { blockSize } = o;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`${what}: blockSize ${blockSize} is invalid`);
  if (chunks.length === 0) throw new RangeError(`${what}: a step needs at least one sequence`);
  const width = o.maxBlocksPerSeq ?? Math.max(...chunks.map((c) => c.blockTable.length));
  const queryStart = new Int32Array(chunks.length + 1);
  const contextLens = new Int32Array(chunks.length);
  const blockTables = new Int32Array(chunks.length * width).fill(-1);
  let rows = 0,
    maxQueryLen = 0,
    maxContextLen = 0;
  chunks.forEach((c, s) => {
    const n = c.tokens.length;
    if (n < 1) throw new RangeError(`${what}: sequence ${s} brings no tokens`);
    if (!Number.isInteger(c.cached) || c.cached < 0)
      throw new RangeError(`${what}: sequence ${s} has ${c.cached} cached positions (a count ≥ 0)`);
    const length = c.cached + n;
    const needed = Math.ceil(length / blockSize);
    if (c.blockTable.length < needed || c.blockTable.length > width)
      throw new RangeError(
        `${what}: sequence ${s} has ${c.blockTable.length} blocks for ${length} positions of ${blockSize} ` +
          `(needs ${needed}, at most ${width})`,
      );
    for (let b = 0; b < c.blockTable.length; b++) blockTables[s * width + b] = c.blockTable[b]!;
    queryStart[s + 1] = rows += n;
    contextLens[s] = length;
    maxQueryLen = Math.max(maxQueryLen, n);
    maxContextLen = Math.max(maxContextLen, length);
  });
  const tokens = new Int32Array(rows);
  const slots = new Int32Array(rows);
  const lastRows: number[] = [];
  chunks.forEach((c, s) => {
    const start = queryStart[s]!;
    for (let i = 0; i < c.tokens.length; i++) {
      const position = c.cached + i;
      tokens[start + i] = c.tokens[i]!;
      slots[start + i] =
        blockTables[s * width + Math.floor(position / blockSize)]! * blockSize + (position % blockSize);
    }
    lastRows.push(queryStart[s + 1]! - 1);
  });
  const logitRows = o.logits === 'all' ? Int32Array.from({ length: rows }, (_, i) => i) : Int32Array.from(lastRows);
  const upload = (values: Int32Array, shape: number[]): Tensor => Tensor.fromArray(values, shape, 'int32', o.device);
  const tensors = [
    upload(tokens, [rows]),
    upload(queryStart, [chunks.length + 1]),
    upload(contextLens, [chunks.length]),
    upload(blockTables, [chunks.length, width]),
    upload(slots, [rows]),
    upload(logitRows, [logitRows.length]),
  ] as const;
  return {
    tokens: tensors[0],
    batch: {
      numSeqs: chunks.length,
      maxBlocksPerSeq: width,
      maxQueryLen,
      maxContextLen,
      queryStart: tensors[1],
      contextLens: tensors[2],
      blockTables: tensors[3],
      host: { queryStart, contextLens, blockTables },
    },
    slots: tensors[4],
    logitRows: tensors[5],
    dispose: () => {
      for (const t of tensors) t.dispose();
    },
  };
}

/**
 * Checks the step's tensors (dtype, shape, device) and bounds against each other; nothing is read from the
 * device. Returns T, the step's rows.
 */
export function checkPagedStep(step: PagedStep, device: string, what: string): number {
  const { batch } = step;
  for (const [name, n] of [
    ['maxQueryLen', batch.maxQueryLen],
    ['maxContextLen', batch.maxContextLen],
  ] as const) {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 31 - 1)
      throw new RangeError(`${what}: batch.${name} ${n} must be a positive int32`);
  }
  const expect = (name: string, t: Tensor, rank: number): void => {
    if (!(t instanceof Tensor)) throw new TypeError(`${what}: ${name} must be a Tensor`);
    t.assertAlive(what, name);
    if (t.dtype !== 'int32') throw new TypeError(`${what}: ${name} must be int32, got ${t.dtype}`);
    if (t.device !== device) throw new RangeError(`${what}: ${name} is on ${t.device}, the model on ${device}`);
    if (t.rank !== rank) throw new RangeError(`${what}: ${name} must have ${rank} axes, got ${formatShape(t.shape)}`);
  };
  expect('tokens', step.tokens, 1);
  expect('slots', step.slots, 1);
  expect('logitRows', step.logitRows, 1);
  expect('batch.queryStart', batch.queryStart, 1);
  expect('batch.contextLens', batch.contextLens, 1);
  expect('batch.blockTables', batch.blockTables, 2);
  const T = step.tokens.size;
  if (T < 1) throw new RangeError(`${what}: a step needs at least one token`);
  if (step.slots.size !== T) throw new RangeError(`${what}: ${step.slots.size} slots for the step's ${T} tokens`);
  const numSeqs = batch.contextLens.size;
  if (numSeqs < 1 || batch.queryStart.size !== numSeqs + 1 || batch.blockTables.shape[0] !== numSeqs)
    throw new RangeError(
      `${what}: batch.queryStart ${formatShape(batch.queryStart.shape)}, contextLens ` +
        `${formatShape(batch.contextLens.shape)} and blockTables ${formatShape(batch.blockTables.shape)} must be ` +
        '[numSeqs + 1], [numSeqs] and [numSeqs, maxBlocksPerSeq] with numSeqs ≥ 1',
    );
  if (batch.numSeqs !== undefined && batch.numSeqs !== numSeqs)
    throw new RangeError(`${what}: batch.numSeqs ${batch.numSeqs} differs from the ${numSeqs} of its tensors`);
  const width = batch.blockTables.shape[1]!;
  if (batch.maxBlocksPerSeq !== undefined && batch.maxBlocksPerSeq !== width)
    throw new RangeError(`${what}: batch.maxBlocksPerSeq ${batch.maxBlocksPerSeq} differs from blockTables' ${width}`);
  if (batch.maxQueryLen > T)
    throw new RangeError(`${what}: batch.maxQueryLen ${batch.maxQueryLen} exceeds the step's ${T} rows`);
  const host = batch.host;
  if (host) {
    if (
      host.queryStart.length !== numSeqs + 1 ||
      host.contextLens.length !== numSeqs ||
      host.blockTables.length !== batch.blockTables.size
    )
      throw new RangeError(`${what}: batch.host arrays do not match the batch's tensors`);
    // Rows past the last sequence's are allowed (a step padded to a captured graph's size) and left alone.
    if (host.queryStart[0] !== 0 || host.queryStart[numSeqs]! > T)
      throw new RangeError(`${what}: batch.host.queryStart must run from 0 to at most the step's ${T} rows`);
    for (let s = 0; s < numSeqs; s++) {
      const n = host.queryStart[s + 1]! - host.queryStart[s]!;
      if (n < 0 || n > batch.maxQueryLen || host.contextLens[s]! < n || host.contextLens[s]! > batch.maxContextLen)
        throw new RangeError(
          `${what}: sequence ${s} has ${n} query rows and ${host.contextLens[s]} positions, outside the batch bounds ` +
            `(maxQueryLen ${batch.maxQueryLen}, maxContextLen ${batch.maxContextLen})`,
        );
    }
  }
  return T;
}
