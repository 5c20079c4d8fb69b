/**
 * Streaming document sources: plain-text files, JSONL files and directories of them.
 * Files are read in fixed-size chunks and JSONL lines are split incrementally, so memory
 * use is bounded by the chunk size and the largest single document, never the corpus size.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { utf8Decoder } from './tokenizer/utf8.js';

export interface Document {
  /** Where the document came from: a file path, `path:line` for JSONL, `path#part` for cut text. */
  id: string;
  /** The text; bytes of a file that are not valid UTF-8 read as U+FFFD here (see `bytes`). */
  text: string;
  /**
   * The document's exact bytes, for documents read from plain-text files: byte-level tokenizers encode
   * these (`encodeBytes`), so a file that is not valid UTF-8 is still tokenized without loss.
   */
  bytes?: Uint8Array;
}

export type InputFormat = 'text' | 'jsonl';

export interface InputFile {
  path: string;
  format: InputFormat;
  bytes: number;
  /** Found by walking a directory (binary files there are skipped rather than read as text). */
  fromDirectory: boolean;
}

export interface ReadOptions {
  /** JSONL field holding the text; a dotted path such as "meta.body" reaches nested objects. Default "text". */
  jsonlField?: string;
  /** JSONL field whose string value becomes the document id (default: `path:line`). */
  jsonlIdField?: string;
  /** Bytes per read. Default 1 MiB. */
  chunkBytes?: number;
  /** A plain-text file longer than this many bytes is cut at line breaks into several documents. Default 16 MiB. */
  maxDocumentBytes?: number;
  /** Called with the number of bytes read after each chunk (for progress bars). */
  onBytes?: (bytes: number) => void;
  /** Called when a file found in a directory is skipped (binary content). */
  onSkip?: (path: string, reason: string) => void;
}

const JSONL_EXTENSIONS = new Set(['.jsonl', '.ndjson']);

/** Expands files and directories (recursively, sorted, skipping dot-files) into the files to read. */
export async function listInputFiles(paths: readonly string[]): Promise<InputFile[]> {
  const files: InputFile[] = [];
  for (const path of paths) await collect(path, false, files);
  return files;
}

async function collect(path: string, fromDirectory: boolean, out: InputFile[]): Promise<void> {
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`input not found: ${path}`);
    throw new Error(`cannot read input ${path}: ${(error as Error).message}`);
  }
  if (info.isDirectory()) {
    const entries = (await readdir(path)).filter((name) => !name.startsWith('.')).sort();
    for (const name of entries) await collect(join(path, name), true, out);
  } else if (info.isFile()) {
    out.push({
      path,
      format: JSONL_EXTENSIONS.has(extname(path).toLowerCase()) ? 'jsonl' : 'text',
      bytes: info.size,
      fromDirectory,
    });
  }
}

/** All documents of the given files and directories, in order. */
export async function* readDocuments(paths: readonly string[], options: ReadOptions = {}): AsyncGenerator<Document> {
  for (const file of await listInputFiles(paths)) yield* readInputFile(file, options);
}

export function readInputFile(file: InputFile, options: ReadOptions = {}): AsyncGenerator<Document> {
  return file.format === 'jsonl'
    ? readJsonlFile(file.path, options)
    : readTextFile(file.path, { ...options, skipBinary: file.fromDirectory });
}

async function* readChunks(path: string, options: ReadOptions): AsyncGenerator<Buffer> {
  const stream = createReadStream(path, { highWaterMark: options.chunkBytes ?? 1 << 20 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      options.onBytes?.(chunk.length);
      yield chunk;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`input not found: ${path}`);
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  } finally {
    stream.destroy();
  }
}

/**
 * One document per non-empty file, with its exact bytes. A file longer than `maxDocumentBytes` is cut
 * after a line break (or, in a line longer than that, between UTF-8 sequences) into documents `path#0`,
 * `path#1`, ..., whose bytes join back to the file's.
 */
export async function* readTextFile(
  path: string,
  options: ReadOptions & { skipBinary?: boolean } = {},
): AsyncGenerator<Document> {
  const maxBytes = options.maxDocumentBytes ?? 16 * 1024 * 1024;
  let pending: Buffer = Buffer.alloc(0);
  let part = 0;
  let first = true;
  let wasCut = false;
  const documentOf = (bytes: Buffer, id: string): Document => {
    const copy = new Uint8Array(bytes);
    return { id, text: utf8Decoder.decode(copy), bytes: copy };
  };
  for await (const chunk of readChunks(path, options)) {
    if (first && options.skipBinary && chunk.includes(0)) {
      options.onSkip?.(path, 'binary file (contains NUL bytes)');
      return;
    }
    first = false;
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length > maxBytes) {
      const cut = cutPoint(pending, maxBytes);
      yield documentOf(pending.subarray(0, cut), `${path}#${part++}`);
      pending = pending.subarray(cut);
      wasCut = true;
    }
  }
  if (pending.length > 0) yield documentOf(pending, wasCut ? `${path}#${part}` : path);
}

/** After the last line break within `limit` bytes, else at `limit` moved back to the start of a UTF-8 sequence. */
function cutPoint(bytes: Uint8Array, limit: number): number {
  const newline = bytes.lastIndexOf(0x0a, limit - 1);
  if (newline >= 0) return newline + 1;
  let cut = limit;
  // Back over at most three continuation bytes (10xxxxxx), so a character is not split in two.
  for (let k = 0; k < 3 && cut > 1 && (bytes[cut]! & 0xc0) === 0x80; k++) cut--;
  return cut;
}

/** One document per non-blank line, taken from `jsonlField`. Errors name the file and line. */
export async function* readJsonlFile(path: string, options: ReadOptions = {}): AsyncGenerator<Document> {
  const field = options.jsonlField ?? 'text';
  const fieldPath = field.split('.');
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let lineNumber = 0;
  const parseLine = (line: string): Document | null => {
    lineNumber++;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim().length === 0) return null;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new Error(`${path}:${lineNumber}: malformed JSON line (${(error as Error).message})`);
    }
    let text: unknown = value;
    // Own fields only: a field named "constructor" or "__proto__" must not reach into Object.prototype.
    for (const key of fieldPath)
      text =
        typeof text === 'object' && text !== null && Object.hasOwn(text, key)
          ? (text as Record<string, unknown>)[key]
          : undefined;
    if (typeof text !== 'string') {
      const present =
        typeof value === 'object' && value !== null && !Array.isArray(value)
          ? Object.keys(value).join(', ') || 'none'
          : `a JSON ${Array.isArray(value) ? 'array' : typeof value}, not an object`;
      const kind = text === null ? 'null' : Array.isArray(text) ? 'array' : typeof text;
      const problem = text === undefined ? 'missing' : `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind}, not a string`;
      throw new Error(
        `${path}:${lineNumber}: text field "${field}" is ${problem} (fields present: ${present}); choose the field ` +
          `with --jsonl-field`,
      );
    }
    const id =
      options.jsonlIdField !== undefined ? (value as Record<string, unknown>)[options.jsonlIdField] : undefined;
    return { id: typeof id === 'string' ? id : `${path}:${lineNumber}`, text };
  };
  for await (const chunk of readChunks(path, options)) {
    pending += decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n', start)) {
      const doc = parseLine(pending.slice(start, newline));
      start = newline + 1;
      if (doc) yield doc;
    }
    pending = pending.slice(start);
  }
  pending += decoder.decode();
  if (pending.length > 0) {
    const doc = parseLine(pending);
    if (doc) yield doc;
  }
}
