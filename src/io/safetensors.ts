/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping each tensor
 * name to { dtype, shape, data_offsets: [begin, end] } (offsets into the data section that follows),
 * an optional "__metadata__" map of strings, then the raw little-endian tensor bytes.
 *
 * Reading validates the header before touching any data and reads tensors one at a time from the
 * file, so large checkpoints never sit in memory twice. Every error names the file and the problem.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { Tensor } from '../tensor/tensor.js';
import { DTYPE_BYTES, type DType } from '../tensor/dtype.js';
import { formatShape, numel } from '../tensor/shape.js';
import { openForReading } from './bounded-read.js';

/** Dtype codes of the format that we read; the narrower and 64-bit integers widen/narrow to int32. */
const STORED_DTYPES = {
  F32: { bytes: 4, dtype: 'float32' },
  F64: { bytes: 8, dtype: 'float64' },
  BF16: { bytes: 2, dtype: 'bfloat16' },
  F16: { bytes: 2, dtype: 'float16' },
  I32: { bytes: 4, dtype: 'int32' },
  I64: { bytes: 8, dtype: 'int32' },
  I16: { bytes: 2, dtype: 'int32' },
  I8: { bytes: 1, dtype: 'int32' },
  U8: { bytes: 1, dtype: 'int32' },
  BOOL: { bytes: 1, dtype: 'int32' },
} as const satisfies Record<string, { bytes: number; dtype: DType }>;

export type StoredDType = keyof typeof STORED_DTYPES;

const CODE_FOR_DTYPE: Record<DType, StoredDType> = {
  float32: 'F32',
  float64: 'F64',
  bfloat16: 'BF16',
  float16: 'F16',
  int32: 'I32',
};

/** Refuse headers beyond this size: real ones are kilobytes to a few megabytes. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

export interface SafetensorsEntry {
  readonly name: string;
  readonly storedDType: StoredDType;
  /** The dtype the tensor gets when read (integers become int32). */
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Byte offsets within the data section. */
  readonly begin: number;
  readonly end: number;
}

/** An open safetensors file: the validated header, and tensors read on demand. Close it when done. */
export class SafetensorsReader {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly dataStart: number,
    readonly entries: ReadonlyMap<string, SafetensorsEntry>,
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.fd = fd;
  }

  static open(path: string): SafetensorsReader {
    let fd: number;
    try {
      fd = openForReading(path);
    } catch (e) {
      throw new SafetensorsError(path, `cannot open: ${(e as Error).message}`);
    }
    try {
      const info = fstatSync(fd);
      if (!info.isFile())
        throw new SafetensorsError(
          path,
          `cannot open: it is ${info.isDirectory() ? 'a directory' : 'not a regular file'}, not a safetensors file`,
        );
      const fileSize = info.size;
      if (fileSize < 8)
        throw new SafetensorsError(
          path,
          `file is ${fileSize} bytes, too short for a safetensors file (it starts with an 8-byte header length)`,
        );
      const lengthBytes = Buffer.alloc(8);
      readSync(fd, lengthBytes, 0, 8, 0);
      const headerLength = Number(lengthBytes.readBigUInt64LE(0));
      if (headerLength > MAX_HEADER_BYTES) {
        throw new SafetensorsError(
          path,
          `header length ${headerLength} is implausibly large (not a safetensors file, or corrupt)`,
        );
      }
      if (8 + headerLength > fileSize) {
        throw new SafetensorsError(
          path,
          `truncated: the header needs ${headerLength} bytes but only ${fileSize - 8} follow the length field`,
        );
      }
      const headerBytes = Buffer.alloc(headerLength);
      readSync(fd, headerBytes, 0, headerLength, 8);
      const { entries, metadata } = parseHeader(path, headerBytes, fileSize - 8 - headerLength);
      return new SafetensorsReader(path, fd, 8 + headerLength, entries, metadata);
    } catch (e) {
      closeSync(fd);
      throw e instanceof SafetensorsError ? e : new SafetensorsError(path, `cannot read: ${(e as Error).message}`);
    }
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e)
      throw new SafetensorsError(this.path, `no tensor named '${name}' (it has: ${this.names.join(', ') || 'none'})`);
    return e;
  }

  /** The stored bytes of one tensor. */
  readBytes(name: string): Buffer {
    if (this.fd === null) throw new SafetensorsError(this.path, 'read after close');
    const e = this.entry(name);
    const out = Buffer.alloc(e.end - e.begin);
    let done = 0;
    while (done < out.length) {
      const n = readSync(this.fd, out, done, out.length - done, this.dataStart + e.begin + done);
      if (n === 0) throw new SafetensorsError(this.path, `truncated while reading tensor '${name}'`);
      done += n;
    }
    return out;
  }

  /** Reads one tensor onto `device`; integer types become int32 (values must fit). */
  readTensor(name: string, device?: string): Tensor {
    const e = this.entry(name);
    const bytes = this.readBytes(name);
    const values = decodeStored(this.path, e, bytes);
    const t = Tensor.empty(e.shape, e.dtype, device);
    if (t.size > 0) t.engine.upload(t.storage.handle, 0, values);
    return t;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function parseHeader(
  path: string,
  headerBytes: Buffer,
  dataSize: number,
): { entries: Map<string, SafetensorsEntry>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch (e) {
    throw new SafetensorsError(path, `the header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new SafetensorsError(path, 'the header is not a JSON object');
  }
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(path, raw);
      continue;
    }
    entries.set(name, parseEntry(path, name, raw, dataSize));
  }
  const sorted = [...entries.values()].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!,
      cur = sorted[i]!;
    if (cur.begin < prev.end) {
      throw new SafetensorsError(
        path,
        `tensors '${prev.name}' [${prev.begin}, ${prev.end}) and '${cur.name}' [${cur.begin}, ${cur.end}) overlap ` +
          `in the data section`,
      );
    }
  }
  return { entries, metadata };
}

function parseMetadata(path: string, raw: unknown): Record<string, string> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new SafetensorsError(path, '__metadata__ must be an object of strings');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string')
      throw new SafetensorsError(path, `__metadata__ value '${k}' is ${typeof v}, not a string`);
  }
  return raw as Record<string, string>;
}

function parseEntry(path: string, name: string, raw: unknown, dataSize: number): SafetensorsEntry {
  const bad = (problem: string) => new SafetensorsError(path, `tensor '${name}': ${problem}`);
  if (raw === null || typeof raw !== 'object') throw bad('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof dtype !== 'string' || !(dtype in STORED_DTYPES)) {
    throw bad(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(STORED_DTYPES).join(', ')})`);
  }
  const stored = STORED_DTYPES[dtype as StoredDType];
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw bad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || offsets.some((o) => !Number.isSafeInteger(o) || o < 0)) {
    throw bad(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
  const needed = numel(shape) * stored.bytes;
  if (end - begin !== needed)
    throw bad(
      `data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${formatShape(shape)} needs ${needed}`,
    );
  if (end > dataSize)
    throw bad(`truncated: its data ends at byte ${end} of the data section, which has only ${dataSize} bytes`);
  return { name, storedDType: dtype as StoredDType, dtype: stored.dtype, shape, begin, end };
}

/** Converts stored bytes to the host array uploaded for the tensor's dtype. */
function decodeStored(path: string, e: SafetensorsEntry, bytes: Buffer): ArrayBufferView {
  const count = numel(e.shape);
  // Copy into an aligned buffer: a Buffer's byteOffset need not be a multiple of the element size.
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  const buf = aligned.buffer;
  switch (e.storedDType) {
    case 'F32':
    case 'F64':
    case 'BF16':
    case 'F16':
    case 'I32':
      return aligned;
    case 'I64': {
      const src = new BigInt64Array(buf, 0, count);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = src[i]!;
        if (v < -2147483648n || v > 2147483647n)
          throw new SafetensorsError(path, `tensor '${e.name}': int64 value ${v} at index ${i} does not fit in int32`);
        out[i] = Number(v);
      }
      return out;
    }
    case 'I16':
      return Int32Array.from(new Int16Array(buf, 0, count));
    case 'I8':
      return Int32Array.from(new Int8Array(buf, 0, count));
    case 'U8':
    case 'BOOL':
      return Int32Array.from(new Uint8Array(buf, 0, count));
  }
}

/** Reads every tensor of a file (or those named) onto `device`. */
export function readSafetensors(
  path: string,
  options: { device?: string; names?: readonly string[] } = {},
): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const reader = SafetensorsReader.open(path);
  const tensors = new Map<string, Tensor>();
  try {
    for (const name of options.names ?? reader.names) tensors.set(name, reader.readTensor(name, options.device));
    return { tensors, metadata: { ...reader.metadata } };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  } finally {
    reader.close();
  }
}

/** Raw bytes of a tensor as stored on its device (half types as their 16-bit patterns). */
function tensorBytes(t: Tensor): Uint8Array {
  t.assertAlive('writeSafetensors');
  const c = t.isContiguous() ? t : t.contiguous();
  try {
    const bytes = c.size * DTYPE_BYTES[c.dtype];
    if (bytes === 0) return new Uint8Array(0);
    return new Uint8Array(c.engine.download(c.storage.handle, c.offset * DTYPE_BYTES[c.dtype], bytes));
  } finally {
    if (c !== t) c.dispose();
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Writes tensors (in name order) with an optional string metadata map. The header is padded with
 * spaces to a multiple of 8 bytes so the data section starts aligned.
 */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
  metadata?: Readonly<Record<string, string>>,
): void {
  const map: ReadonlyMap<string, Tensor> =
    tensors instanceof Map ? tensors : new Map(Object.entries(tensors as Record<string, Tensor>));
  const names = [...map.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    if (name === '__metadata__') throw new SafetensorsError(path, "a tensor cannot be named '__metadata__'");
    const t = map.get(name)!;
    const bytes = t.size * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: CODE_FOR_DTYPE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const lengthBytes = Buffer.alloc(8);
  lengthBytes.writeBigUInt64LE(BigInt(headerBytes.length));
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw new SafetensorsError(path, `cannot create: ${(e as Error).message}`);
  }
  try {
    writeAll(fd, lengthBytes);
    writeAll(fd, headerBytes);
    for (const name of names) writeAll(fd, tensorBytes(map.get(name)!));
  } catch (e) {
    throw e instanceof SafetensorsError ? e : new SafetensorsError(path, `cannot write: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}
