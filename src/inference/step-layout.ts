/**
 * The host-side layout of one paged forward (tokens, query starts, context lengths, block tables, cache slots,
 * logit rows), built from what each sequence brings to the step. Field meanings are those of PagedBatchArgs
 * and PagedStep in the inference contract; the model runner uploads them.
 */
import type { Sequence } from './sequence.js';

export interface ForwardLayout {
  numSeqs: number;
  blockSize: number;
  /** Tokens of every query row, sequence after sequence, [T]. */
  tokens: Int32Array;
  /** [numSeqs + 1]: sequence s owns rows queryStart[s] .. queryStart[s + 1] − 1. */
  queryStart: Int32Array;
  /** [numSeqs]: positions of sequence s in the cache once this step's are written. */
  contextLens: Int32Array;
  /** [numSeqs, maxBlocksPerSeq], −1 past a sequence's table. */
  blockTables: Int32Array;
  maxBlocksPerSeq: number;
  maxQueryLen: number;
  maxContextLen: number;
  /** [T]: pool row of every row's position. */
  slots: Int32Array;
  /** [R]: rows whose logits the step returns, in the order of the parts that want them. */
  logitRows: Int32Array;
}

/** One sequence's rows in a forward. */
export interface ForwardPart {
  sequence: Sequence;
  /** The rows are positions start .. start + count − 1. */
  start: number;
  count: number;
  /**
   * Tokens of positions past the sequence's own tokens (draft proposals being scored), in position order;
   * the rows may reach into them.
   */
  beyond?: readonly number[];
  /** How many of the part's last rows want logits (0: none). */
  logits: number;
}

/**
 * Lays out `parts` (one per sequence) over the sequences' block tables, which must already cover every
 * row's position.
 */
export function buildForwardLayout(
  parts: readonly ForwardPart[],
  blockTable: (sequence: Sequence) => readonly number[],
  blockSize: number,
): ForwardLayout {
  const numSeqs = parts.length;
  const totalRows = parts.reduce((n, p) => n + p.count, 0);
  let maxBlocksPerSeq = 1;
  let maxQueryLen = 0;
  let maxContextLen = 0;
  for (const p of parts) {
    maxBlocksPerSeq = Math.max(maxBlocksPerSeq, blockTable(p.sequence).length);
    maxQueryLen = Math.max(maxQueryLen, p.count);
    maxContextLen = Math.max(maxContextLen, p.start + p.count);
  }
  const tokens = new Int32Array(totalRows);
  const slots = new Int32Array(totalRows);
  const queryStart = new Int32Array(numSeqs + 1);
  const contextLens = new Int32Array(numSeqs);
  const blockTables = new Int32Array(numSeqs * maxBlocksPerSeq).fill(-1);
  const logitRows: number[] = [];
  let row = 0;
  parts.forEach((part, s) => {
    const { sequence, start, count } = part;
    const table = blockTable(sequence);
    const own = sequence.tokens.length;
    if (start + count > own + (part.beyond?.length ?? 0))
      throw new RangeError(`step layout: sequence ${sequence.id} has no token for position ${start + count - 1}`);
    if (Math.ceil((start + count) / blockSize) > table.length)
      throw new RangeError(`step layout: sequence ${sequence.id} has too few blocks for position ${start + count - 1}`);
    blockTables.set(table, s * maxBlocksPerSeq);
    queryStart[s] = row;
    contextLens[s] = start + count;
    for (let p = start; p < start + count; p++, row++) {
      tokens[row] = p < own ? sequence.tokens[p]! : part.beyond![p - own]!;
      slots[row] = table[Math.floor(p / blockSize)]! * blockSize + (p % blockSize);
    }
    for (let r = row - part.logits; r < row; r++) logitRows.push(r);
  });
  queryStart[numSeqs] = row;
  return {
    numSeqs,
    blockSize,
    tokens,
    queryStart,
    contextLens,
    blockTables,
    maxBlocksPerSeq,
    maxQueryLen,
    maxContextLen,
    slots,
    logitRows: Int32Array.from(logitRows),
  };
}
