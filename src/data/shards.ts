/**
 * Token shard files. Layout (little-endian):
 *
 *   offset  size  field
 *        0     8  magic "ANDRTOKS"
 *        8     4  format version (1)
 *       12     4  bytes per token: 2 (uint16) or 4 (uint32)
 *       16     8  token count
 *       24     8  document count (EOS tokens in this shard)
 *       32     4  vocabulary size
 *       36     4  EOS id
 *       40     4  CRC-32 of the token bytes
 *       44     4  header size (64)
 *       48    16  reserved, zero
 *       64     …  tokens
 *
 * Documents are written as their tokens followed by the EOS id; a document may continue into
 * the next shard, so a split's shards read in order form one token stream. Readers fetch any
 * range with positioned reads and never need to load a whole shard.
 */
import { closeSync, fstatSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { crc32 } from './crc32.js';
import { checkRange, ConcatTokenSource, type TokenSource } from './token-source.js';
import { openForReading } from '../io/bounded-read.js';

export const SHARD_MAGIC = 'ANDRTOKS';
export const SHARD_VERSION = 1;
export const SHARD_HEADER_BYTES = 64;

export type TokenDType = 'uint16' | 'uint32';

export function dtypeForVocab(vocabSize: number): TokenDType {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

function bytesPerToken(dtype: TokenDType): 2 | 4 {
  return dtype === 'uint16' ? 2 : 4;
}

export interface ShardHeader {
  version: number;
  dtype: TokenDType;
  tokenCount: number;
  documentCount: number;
  vocabSize: number;
  eosId: number;
  checksum: number;
}

function encodeHeader(h: ShardHeader): Buffer {
  const buf = Buffer.alloc(SHARD_HEADER_BYTES);
  buf.write(SHARD_MAGIC, 0, 'latin1');
  buf.writeUInt32LE(h.version, 8);
  buf.writeUInt32LE(bytesPerToken(h.dtype), 12);
  buf.writeBigUInt64LE(BigInt(h.tokenCount), 16);
  buf.writeBigUInt64LE(BigInt(h.documentCount), 24);
  buf.writeUInt32LE(h.vocabSize, 32);
  buf.writeUInt32LE(h.eosId, 36);
  buf.writeUInt32LE(h.checksum >>> 0, 40);
  buf.writeUInt32LE(SHARD_HEADER_BYTES, 44);
  return buf;
}

/** Writes one shard; the header is filled in on `close`, and the file appears under its name only then. */
export class TokenShardWriter {
  private readonly fd: number;
  private readonly tempPath: string;
  private readonly width: 2 | 4;
  private buffer: Buffer;
  private buffered = 0;
  private tokenCount = 0;
  private documentCount = 0;
  private checksum = 0;
  private writtenBytes = 0;
  private closed = false;

  constructor(
    readonly path: string,
    readonly options: { dtype: TokenDType; vocabSize: number; eosId: number; bufferTokens?: number },
  ) {
    this.width = bytesPerToken(options.dtype);
    this.buffer = Buffer.alloc((options.bufferTokens ?? 1 << 20) * this.width);
    this.tempPath = `${path}.partial`;
    this.fd = openSync(this.tempPath, 'w');
    writeSync(this.fd, Buffer.alloc(SHARD_HEADER_BYTES), 0, SHARD_HEADER_BYTES, 0);
  }

  get tokens(): number {
    return this.tokenCount;
  }

  get documents(): number {
    return this.documentCount;
  }

  write(tokens: ArrayLike<number>): void {
    if (this.closed) throw new Error(`shard ${this.path} is already closed`);
    const { vocabSize, eosId } = this.options;
    for (let i = 0; i < tokens.length; i++) {
      const id = tokens[i];
      if (!(id >= 0 && id < vocabSize && Number.isInteger(id)))
        throw new RangeError(`token id ${id} outside the vocabulary [0, ${vocabSize}) while writing ${this.path}`);
      if (id === eosId) this.documentCount++;
      if (this.width === 2) this.buffer.writeUInt16LE(id, this.buffered);
      else this.buffer.writeUInt32LE(id, this.buffered);
      this.buffered += this.width;
      if (this.buffered === this.buffer.length) this.flush();
    }
    this.tokenCount += tokens.length;
  }

  private flush(): void {
    if (this.buffered === 0) return;
    const data = this.buffer.subarray(0, this.buffered);
    this.checksum = crc32(data, this.checksum);
    writeSync(this.fd, data, 0, data.length, SHARD_HEADER_BYTES + this.writtenBytes);
    this.writtenBytes += data.length;
    this.buffered = 0;
  }

  close(): ShardHeader {
    if (this.closed) throw new Error(`shard ${this.path} is already closed`);
    this.flush();
    const header: ShardHeader = {
      version: SHARD_VERSION,
      dtype: this.options.dtype,
      tokenCount: this.tokenCount,
      documentCount: this.documentCount,
      vocabSize: this.options.vocabSize,
      eosId: this.options.eosId,
      checksum: this.checksum,
    };
    writeSync(this.fd, encodeHeader(header), 0, SHARD_HEADER_BYTES, 0);
    closeSync(this.fd);
    renameSync(this.tempPath, this.path);
    this.closed = true;
    return header;
  }
}

/** An open shard file: header checked against the file size on open; tokens read by positioned reads. */
export class TokenShard implements TokenSource {
  private fd: number | null;
  readonly header: ShardHeader;
  private readonly width: 2 | 4;

  private constructor(
    readonly path: string,
    fd: number,
    header: ShardHeader,
  ) {
    this.fd = fd;
    this.header = header;
    this.width = bytesPerToken(header.dtype);
  }

  static open(path: string): TokenShard {
    let fd: number;
    try {
      fd = openForReading(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new Error(
        code === 'ENOENT'
          ? `token shard not found: ${path}`
          : `cannot open token shard ${path}: ${(error as Error).message}`,
      );
    }
    try {
      return new TokenShard(path, fd, readHeader(path, fd));
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  get length(): number {
    return this.header.tokenCount;
  }

  read(start: number, count: number): Int32Array {
    return this.decode(this.readRaw(start, count), count);
  }

  private readRaw(start: number, count: number): Buffer {
    checkRange(start, count, this.header.tokenCount, `shard ${this.path}`);
    if (this.fd === null) throw new Error(`token shard ${this.path} is closed`);
    const bytes = Buffer.alloc(count * this.width);
    const got = readFully(this.fd, bytes, SHARD_HEADER_BYTES + start * this.width);
    if (got !== bytes.length)
      throw new Error(
        `token shard ${this.path} is truncated: could not read tokens [${start}, ${start + count}) (file shrank?)`,
      );
    return bytes;
  }

  private decode(bytes: Buffer, count: number): Int32Array {
    const out = new Int32Array(count);
    if (this.width === 2) for (let i = 0; i < count; i++) out[i] = bytes.readUInt16LE(2 * i);
    else for (let i = 0; i < count; i++) out[i] = bytes.readUInt32LE(4 * i);
    return out;
  }

  /** Reads the whole shard once: checks the CRC, that ids are in the vocabulary and the EOS count. */
  verify(chunkTokens = 1 << 20): void {
    let checksum = 0;
    let documents = 0;
    const { vocabSize, eosId, tokenCount } = this.header;
    for (let start = 0; start < tokenCount; start += chunkTokens) {
      const count = Math.min(chunkTokens, tokenCount - start);
      const raw = this.readRaw(start, count);
      const tokens = this.decode(raw, count);
      checksum = crc32(raw, checksum);
      for (let i = 0; i < count; i++) {
        if (tokens[i] >= vocabSize)
          throw new Error(
            `token shard ${this.path} is corrupt: token ${start + i} has id ${tokens[i]} outside the vocabulary ` +
              `[0, ${vocabSize})`,
          );
        if (tokens[i] === eosId) documents++;
      }
    }
    if (checksum !== this.header.checksum)
      throw new Error(
        `token shard ${this.path} is corrupt: checksum mismatch ` +
          `(header ${hex(this.header.checksum)}, data ${hex(checksum)})`,
      );
    if (documents !== this.header.documentCount)
      throw new Error(
        `token shard ${this.path} is corrupt: header says ${this.header.documentCount} documents but the data ` +
          `has ${documents} EOS tokens`,
      );
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function readHeader(path: string, fd: number): ShardHeader {
  const stats = fstatSync(fd);
  if (!stats.isFile()) throw new Error(`token shard ${path} is not a regular file`);
  const size = stats.size;
  const corrupt = (what: string): never => {
    throw new Error(`token shard ${path} is corrupt: ${what}`);
  };
  if (size < SHARD_HEADER_BYTES) corrupt(`file has ${size} bytes, shorter than the ${SHARD_HEADER_BYTES}-byte header`);
  const buf = Buffer.alloc(SHARD_HEADER_BYTES);
  readFully(fd, buf, 0);
  if (buf.toString('latin1', 0, 8) !== SHARD_MAGIC)
    corrupt(`bad magic ${JSON.stringify(buf.toString('latin1', 0, 8))} (not an Andromeda token shard)`);
  const version = buf.readUInt32LE(8);
  if (version !== SHARD_VERSION) corrupt(`format version ${version} is not supported (expected ${SHARD_VERSION})`);
  const width = buf.readUInt32LE(12);
  if (width !== 2 && width !== 4) corrupt(`unknown token width ${width} bytes (expected 2 or 4)`);
  const headerBytes = buf.readUInt32LE(44);
  if (headerBytes !== SHARD_HEADER_BYTES) corrupt(`header size ${headerBytes} (expected ${SHARD_HEADER_BYTES})`);
  const tokenCount = Number(buf.readBigUInt64LE(16));
  const documentCount = Number(buf.readBigUInt64LE(24));
  const expected = SHARD_HEADER_BYTES + tokenCount * width;
  if (size < expected)
    corrupt(`truncated: header says ${tokenCount} tokens (${expected} bytes) but the file has ${size} bytes`);
  if (size > expected) corrupt(`file has ${size - expected} bytes past the ${tokenCount} tokens the header declares`);
  const vocabSize = buf.readUInt32LE(32);
  const eosId = buf.readUInt32LE(36);
  if (eosId >= vocabSize) corrupt(`EOS id ${eosId} outside the vocabulary [0, ${vocabSize})`);
  return {
    version,
    dtype: width === 2 ? 'uint16' : 'uint32',
    tokenCount,
    documentCount,
    vocabSize,
    eosId,
    checksum: buf.readUInt32LE(40),
  };
}

function readFully(fd: number, buffer: Buffer, position: number): number {
  let done = 0;
  while (done < buffer.length) {
    const n = readSync(fd, buffer, done, buffer.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function hex(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}

/** Several shards read as one token stream, in order. */
export class ShardSequence extends ConcatTokenSource {
  constructor(readonly shards: readonly TokenShard[]) {
    super(shards);
  }

  static open(paths: readonly string[]): ShardSequence {
    const shards: TokenShard[] = [];
    try {
      for (const path of paths) shards.push(TokenShard.open(path));
    } catch (error) {
      for (const s of shards) s.close();
      throw error;
    }
    return new ShardSequence(shards);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}
