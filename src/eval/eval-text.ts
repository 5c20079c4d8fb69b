/**
 * The text an evaluation reads: the bundled corpus's held-out split (documents the training never saw) or
 * a file, as documents; and the windows of `length` + 1 tokens cut from them for the loss by position.
 */
import { defaultCorpusDocuments } from '../data/default-corpus.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { readBoundedFile, TEXT_FILE_LIMIT, UnreadableFileError } from '../io/bounded-read.js';

export interface EvalDocument {
  readonly id: string;
  readonly text: string;
  readonly tokens: Int32Array;
}

/** The held-out documents of the bundled corpus, tokenized. */
export async function heldOutDocuments(tokenizer: Tokenizer): Promise<EvalDocument[]> {
  const docs: EvalDocument[] = [];
  for await (const doc of defaultCorpusDocuments({ split: 'val' }))
    docs.push({ id: doc.id, text: doc.text, tokens: tokenizer.encode(doc.text) });
  return docs;
}

/** One document: the whole file, its exact bytes tokenized. */
export function fileDocument(path: string, tokenizer: Tokenizer, flag: string): EvalDocument {
  let bytes: Buffer;
  try {
    bytes = readBoundedFile(path, TEXT_FILE_LIMIT);
  } catch (error) {
    if (error instanceof UnreadableFileError) throw new Error(`${flag} ${path} ${error.reason}`);
    throw new Error(`${flag} ${path}: cannot be read (${(error as Error).message.replace(/^.*?: /, '')})`);
  }
  return { id: path, text: bytes.toString('utf8'), tokens: tokenizer.encodeBytes(bytes) };
}

export interface TokenWindow {
  readonly document: string;
  /** Index of the window's first token in its document. */
  readonly start: number;
  readonly tokens: Int32Array;
}

/**
 * Up to `count` windows of `length` + 1 tokens (length predictions each), none crossing a document boundary
 * (positions count from a real start of context, never through an unrelated document) and none overlapping.
 * When there are more than `count`, they are taken evenly over all of them, always the same ones.
 */
export function tokenWindows(documents: readonly EvalDocument[], length: number, count: number): TokenWindow[] {
  if (!Number.isInteger(length) || length < 1) throw new RangeError(`window length must be ≥ 1, got ${length}`);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`window count must be ≥ 1, got ${count}`);
  const all: Array<{ doc: EvalDocument; start: number }> = [];
  for (const doc of documents)
    for (let start = 0; start + length + 1 <= doc.tokens.length; start += length + 1) all.push({ doc, start });
  const chosen =
    all.length <= count ? all : Array.from({ length: count }, (_, i) => all[Math.floor((i * all.length) / count)]!);
  return chosen.map(({ doc, start }) => ({
    document: doc.id,
    start,
    tokens: doc.tokens.subarray(start, start + length + 1),
  }));
}

/** Bytes each token id stands for (end-of-text: none), for bits per byte. */
export function tokenByteCounts(tokenizer: Tokenizer): Float64Array {
  const bytes = new Float64Array(tokenizer.vocabSize);
  for (let t = 0; t < tokenizer.vocabSize; t++) bytes[t] = t === tokenizer.eosId ? 0 : tokenizer.tokenBytes(t).length;
  return bytes;
}
