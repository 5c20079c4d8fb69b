/**
 * The compressed file: a header that says how to rebuild the coding model and check the result,
 * then the range coder's bytes. Layout (little-endian):
 *
 *   magic "ANDZ" · version u8 · header length u32 · header JSON (UTF-8) · header CRC32 u32 · payload
 *
 * The JSON holds the original length and CRC32, the coding parameters, and the model: for a
 * checkpoint its name and the SHA-256 of its weight file; for online coding everything needed to
 * rebuild the starting model; and whether the bytes were coded bit by bit through the context
 * mixer (`contextMixing`) or with the model's distribution alone. The header's own CRC lets a
 * damaged header be reported as such before anything is allocated from its numbers.
 */
import { crc32 } from '../data/crc32.js';
import type { CodingModelSpec } from './coding-model.js';

const MAGIC = Uint8Array.from([0x41, 0x4e, 0x44, 0x5a]); // "ANDZ"
export const CONTAINER_VERSION = 1;
/** Larger headers are not ones we write: the length field is damaged. */
const MAX_HEADER_BYTES = 1 << 20;

export interface CompressedHeader {
  /** Length of the original data in bytes. */
  readonly length: number;
  /** CRC-32 of the original data. */
  readonly crc32: number;
  /** Independent byte streams coded side by side (one batch row each). */
  readonly streams: number;
  /** Tokens the model sees at most (its context window). */
  readonly context: number;
  /** Tokens kept when the context is full and the cache is rebuilt. */
  readonly overlap: number;
  /** Engine the probabilities were computed on; decoding must use the same one. */
  readonly engine: string;
  readonly model: CodingModelSpec;
  /** Bytes were coded bit by bit with the model mixed into the context-mixing predictor (absent: the model alone). */
  readonly contextMixing?: boolean;
  /** The context mixer's version (CONTEXT_MIXER_VERSION) when contextMixing; absent in version-1 files. */
  readonly mixerVersion?: number;
}

export class CompressedFileError extends Error {
  override name = 'CompressedFileError';
}

export function writeContainer(header: CompressedHeader, payload: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(MAGIC.length + 1 + 4 + json.length + 4 + payload.length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = CONTAINER_VERSION;
  view.setUint32(5, json.length, true);
  out.set(json, 9);
  view.setUint32(9 + json.length, crc32(out.subarray(0, 9 + json.length)), true);
  out.set(payload, 13 + json.length);
  return out;
}

/** Splits a compressed file into its header and payload; `name` is the file's name for messages. */
export function readContainer(data: Uint8Array, name: string): { header: CompressedHeader; payload: Uint8Array } {
  if (data.length < 9 || !MAGIC.every((b, i) => data[i] === b))
    throw new CompressedFileError(`${name} is not an Andromeda compressed file (no ANDZ signature)`);
  if (data[4] !== CONTAINER_VERSION)
    throw new CompressedFileError(
      `${name}: compressed-file version ${data[4]} is not supported (this build reads version ${CONTAINER_VERSION})`,
    );
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const jsonLength = view.getUint32(5, true);
  if (jsonLength > MAX_HEADER_BYTES || 13 + jsonLength > data.length)
    throw new CompressedFileError(`${name} is corrupt or truncated: its header length (${jsonLength}) is impossible`);
  const stored = view.getUint32(9 + jsonLength, true);
  if (crc32(data.subarray(0, 9 + jsonLength)) !== stored)
    throw new CompressedFileError(`${name} is corrupt: its header does not match its CRC32`);
  let header: CompressedHeader;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(9, 9 + jsonLength)));
  } catch (e) {
    throw new CompressedFileError(`${name} is corrupt: its header is not valid JSON (${(e as Error).message})`);
  }
  return { header, payload: data.subarray(13 + jsonLength) };
}
