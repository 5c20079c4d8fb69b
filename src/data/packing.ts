/**
 * Packing token streams into fixed-length training rows with per-position document metadata.
 *
 * A row holds seqLen + 1 consecutive tokens of a stream in which documents are separated by
 * EOS: inputs are row[0..seqLen), targets row[1..seqLen]. Within a row, segment ids number the
 * documents from 0, and each EOS token opens a new segment (an EOS is the last target of one
 * document and the first input of the next, like a BOS). Positions restart at 0 at every EOS.
 * So a model that masks attention across segments still predicts every target from its own
 * document: the last token of a document predicts EOS, and the EOS predicts the next document's
 * first token. With segments switched off, segment ids are all 0 and positions run 0..seqLen-1.
 */
import type { Document } from './sources.js';
import type { TokenSource } from './token-source.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

/** Plain typed arrays, row-major: position t of row r is at index r * seqLen + t. */
export interface Batch {
  batchSize: number;
  seqLen: number;
  /** [batchSize * (seqLen + 1)] the rows themselves. */
  tokens: Int32Array;
  /** [batchSize * seqLen] */
  inputs: Int32Array;
  /** [batchSize * seqLen] the next token for each input position. */
  targets: Int32Array;
  /** [batchSize * seqLen] document index within the row, per input position. */
  segmentIds: Int32Array;
  /** [batchSize * seqLen] position within the document, per input position. */
  positions: Int32Array;
}

export interface PackingOptions {
  seqLen: number;
  eosId: number;
  /** Reset segments and positions at document boundaries. Default true. */
  segments?: boolean;
}

/** Fills segment ids and positions for the seqLen input positions of one row. */
export function fillRowMetadata(
  row: ArrayLike<number>,
  seqLen: number,
  eosId: number,
  useSegments: boolean,
  segmentIds: Int32Array,
  positions: Int32Array,
  offset = 0,
): void {
  let segment = 0;
  let position = 0;
  for (let t = 0; t < seqLen; t++) {
    if (useSegments && row[t] === eosId && t > 0) {
      segment++;
      position = 0;
    }
    segmentIds[offset + t] = useSegments ? segment : 0;
    positions[offset + t] = position++;
  }
}

/** Assembles rows of seqLen + 1 tokens into a batch. */
export function makeBatch(rows: readonly Int32Array[], options: PackingOptions): Batch {
  const { seqLen, eosId } = options;
  const useSegments = options.segments ?? true;
  const b = rows.length;
  const tokens = new Int32Array(b * (seqLen + 1));
  const inputs = new Int32Array(b * seqLen);
  const targets = new Int32Array(b * seqLen);
  const segmentIds = new Int32Array(b * seqLen);
  const positions = new Int32Array(b * seqLen);
  rows.forEach((row, r) => {
    if (row.length !== seqLen + 1)
      throw new Error(`row ${r} has ${row.length} tokens, expected seqLen + 1 = ${seqLen + 1}`);
    tokens.set(row, r * (seqLen + 1));
    inputs.set(row.subarray(0, seqLen), r * seqLen);
    targets.set(row.subarray(1), r * seqLen);
    fillRowMetadata(row, seqLen, eosId, useSegments, segmentIds, positions, r * seqLen);
  });
  return { batchSize: b, seqLen, tokens, inputs, targets, segmentIds, positions };
}

/** How many rows of seqLen + 1 tokens fit in `length` tokens when rows overlap by one token. */
export function rowCount(length: number, seqLen: number): number {
  return length > seqLen ? Math.floor((length - 1) / seqLen) : 0;
}

/**
 * Batches of consecutive rows from the start of `source`, in order (for held-out evaluation):
 * every token after the first is a target exactly once. The last batch may be smaller unless
 * `dropLast` is set.
 */
export function* sequentialBatches(
  source: TokenSource,
  options: PackingOptions & { batchSize: number; dropLast?: boolean; maxBatches?: number },
): Generator<Batch> {
  const { seqLen, batchSize } = options;
  const rows = rowCount(source.length, seqLen);
  let emitted = 0;
  for (let first = 0; first < rows; first += batchSize) {
    const n = Math.min(batchSize, rows - first);
    if (n < batchSize && options.dropLast) return;
    if (options.maxBatches !== undefined && emitted >= options.maxBatches) return;
    const span = source.read(first * seqLen, n * seqLen + 1);
    const batchRows = Array.from({ length: n }, (_, r) => span.subarray(r * seqLen, r * seqLen + seqLen + 1));
    yield makeBatch(batchRows, options);
    emitted++;
  }
}

/** Streams rows of seqLen + 1 tokens from documents joined by EOS (rows overlap by one token). */
export async function* packDocuments(
  documents: AsyncIterable<ArrayLike<number>> | Iterable<ArrayLike<number>>,
  options: { seqLen: number; eosId: number },
): AsyncGenerator<Int32Array> {
  const { seqLen, eosId } = options;
  let row = new Int32Array(seqLen + 1);
  let filled = 0;
  const push = function* (id: number): Generator<Int32Array> {
    row[filled++] = id;
    if (filled === seqLen + 1) {
      const done = row;
      row = new Int32Array(seqLen + 1);
      row[0] = done[seqLen];
      filled = 1;
      yield done;
    }
  };
  for await (const doc of documents) {
    for (let i = 0; i < doc.length; i++) yield* push(doc[i]);
    yield* push(eosId);
  }
}

/** Tokenizes documents into one in-memory stream, each followed by EOS; also counts their UTF-8 bytes. */
export async function tokenizeToArray(
  documents: AsyncIterable<Document> | Iterable<Document>,
  tokenizer: Tokenizer,
): Promise<{ tokens: Int32Array; documents: number; textBytes: number }> {
  const parts: Int32Array[] = [];
  let total = 0;
  let count = 0;
  let textBytes = 0;
  for await (const doc of documents) {
    const ids = tokenizer.encode(doc.text);
    parts.push(ids);
    total += ids.length + 1;
    count++;
    textBytes += Buffer.byteLength(doc.text, 'utf8');
  }
  const tokens = new Int32Array(total);
  let offset = 0;
  for (const ids of parts) {
    tokens.set(ids, offset);
    offset += ids.length;
    tokens[offset++] = tokenizer.eosId;
  }
  return { tokens, documents: count, textBytes };
}
