/**
 * Model-driven compression: the input is split into up to `maxStreams` contiguous streams coded
 * side by side (one batch row each, so the model runs on S tokens per call instead of 1), and the
 * bytes are range-coded in the order (step t, stream 0..S−1) with the model's quantised next-byte
 * distributions, or, with context mixing, bit by bit with the model's probabilities mixed into a
 * context-mixing predictor. Decoding runs the same model calls and the same predictor updates in
 * the same order and so recovers every byte.
 */
import { crc32 } from '../data/crc32.js';
import { RangeDecoder, RangeEncoder } from './range-coder.js';
import { MixingByteCoder, ModelByteCoder, type ByteCoder } from './byte-coders.js';
import { CompressedFileError, readContainer, writeContainer, type CompressedHeader } from './container.js';
import type { CodingModel } from './coding-model.js';
import { StreamPredictor, type OnlineTraining } from './stream-predictor.js';
import { CONTEXT_MIXER_VERSION, CONTEXT_MIXER_VERSIONS, type ContextMixerVersion } from './context-mixer.js';

/** Streams are at least this long (a stream's first bytes are coded with little context). */
export const MIN_STREAM_BYTES = 4096;
export const DEFAULT_MAX_STREAMS = 64;
export const MAX_STREAMS = 4096;

export interface CompressOptions {
  /** Most streams coded side by side (more: faster, a little worse). Default 64. */
  maxStreams?: number;
  /** Most tokens the model sees (default: the model's maximum sequence length). */
  context?: number;
  /** Tokens kept when the context window is rebuilt; default half the context. */
  overlap?: number;
  /** Mix the model's probabilities with the context-mixing predictor (default: the model alone). */
  contextMixing?: boolean;
  /** The engine the logits come from (recorded in the header). */
  engine: string;
  /** Called after each step with the bytes coded so far. */
  onProgress?: (done: number, total: number) => void;
}

export interface CodingStats {
  /** Model training steps taken (online mode). */
  trainingSteps: number;
  /**
   * Bits the model's distribution alone would take for the input (ideal code, no header): with
   * context mixing, what the model would do without the mixer, measured in the same run.
   */
  modelBits: number;
}

interface Layout {
  streams: number;
  /** Bytes per stream (the last may be shorter). */
  chunk: number;
}

function layout(length: number, streams: number): Layout {
  return { streams, chunk: Math.ceil(length / streams) };
}

function streamLength(l: Layout, total: number, s: number): number {
  return Math.max(0, Math.min(total, (s + 1) * l.chunk) - s * l.chunk);
}

/** Token histories: row s starts with the start token; padding past a stream's end is the start token too. */
function histories(l: Layout, startToken: number): Int32Array[] {
  return Array.from({ length: l.streams }, () => new Int32Array(l.chunk + 1).fill(startToken));
}

function byteCoder(header: CompressedHeader, buffer: Uint8Array, l: Layout): ByteCoder {
  if (!header.contextMixing) return new ModelByteCoder();
  return new MixingByteCoder(buffer, l, (header.mixerVersion ?? 1) as ContextMixerVersion);
}

function trainingOf(model: CodingModel): OnlineTraining | undefined {
  return model.spec.kind === 'online'
    ? { learningRate: model.spec.learningRate, lrDecaySteps: model.spec.lrDecaySteps }
    : undefined;
}

export function compressBytes(
  data: Uint8Array,
  model: CodingModel,
  o: CompressOptions,
): { file: Uint8Array; stats: CodingStats } {
  const maxStreams = o.maxStreams ?? DEFAULT_MAX_STREAMS;
  if (!Number.isInteger(maxStreams) || maxStreams < 1 || maxStreams > MAX_STREAMS)
    throw new RangeError(`--streams must be an integer from 1 to ${MAX_STREAMS}, got ${maxStreams}`);
  const context = o.context ?? model.model.config.maxSeqLen;
  const overlap = o.overlap ?? Math.floor(context / 2);
  const streams = Math.min(maxStreams, Math.max(1, Math.ceil(data.length / MIN_STREAM_BYTES)));
  const header: CompressedHeader = {
    length: data.length,
    crc32: crc32(data),
    streams,
    context,
    overlap,
    engine: o.engine,
    model: model.spec,
    ...(o.contextMixing ? { contextMixing: true, mixerVersion: CONTEXT_MIXER_VERSION } : {}),
  };
  const l = layout(data.length, streams);
  const fed = histories(l, model.startToken);
  for (let s = 0; s < streams; s++)
    fed[s]!.set(data.subarray(s * l.chunk, s * l.chunk + streamLength(l, data.length, s)), 1);
  const predictor = new StreamPredictor(model.model, fed, { context, overlap, training: trainingOf(model) });
  const encoder = new RangeEncoder();
  const coder = byteCoder(header, data, l);
  const vocab = model.model.config.vocabSize;
  try {
    for (let t = 0, done = 0; t < l.chunk; t++) {
      const logits = predictor.logitsAt(t);
      for (let s = 0; s < streams; s++) {
        if (t >= streamLength(l, data.length, s)) continue;
        coder.encode(encoder, logits, s * vocab, s, fed[s]![t + 1]!);
        done++;
      }
      o.onProgress?.(done, data.length);
    }
    return {
      file: writeContainer(header, encoder.finish()),
      stats: { trainingSteps: predictor.trainingSteps, modelBits: coder.modelBits },
    };
  } finally {
    predictor.dispose();
  }
}

/** The header of a compressed file, checked; `name` names the file in messages. */
export function readHeader(file: Uint8Array, name: string): { header: CompressedHeader; payload: Uint8Array } {
  const { header, payload } = readContainer(file, name);
  const h = header as Partial<CompressedHeader>;
  const isCount = (v: unknown, min: number, max: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
  if (
    !isCount(h.length, 0, Number.MAX_SAFE_INTEGER) ||
    !isCount(h.crc32, 0, 0xffffffff) ||
    !isCount(h.streams, 1, MAX_STREAMS) ||
    !isCount(h.context, 2, 1 << 20) ||
    !isCount(h.overlap, 1, (h.context ?? 2) - 1) ||
    typeof h.engine !== 'string' ||
    typeof h.model !== 'object' ||
    h.model === null ||
    (h.model.kind !== 'checkpoint' && h.model.kind !== 'online') ||
    typeof h.model.sha256 !== 'string' ||
    (h.contextMixing !== undefined && typeof h.contextMixing !== 'boolean') ||
    (h.mixerVersion !== undefined && !isCount(h.mixerVersion, 1, 1 << 20))
  )
    throw new CompressedFileError(`${name}: the header's fields are missing or out of range`);
  if (h.contextMixing && !CONTEXT_MIXER_VERSIONS.includes(h.mixerVersion ?? 1))
    throw new CompressedFileError(
      `${name} was coded with context-mixer version ${h.mixerVersion ?? 1}; this build decodes versions ` +
        `${CONTEXT_MIXER_VERSIONS.join(', ')} (a newer build wrote it: use that one)`,
    );
  return { header, payload };
}

export function decompressBytes(
  header: CompressedHeader,
  payload: Uint8Array,
  model: CodingModel,
  o: { engine: string; name: string; onProgress?: (done: number, total: number) => void },
): Uint8Array {
  if (model.spec.sha256 !== header.model.sha256)
    throw new CompressedFileError(
      `${o.name} was compressed with model ${header.model.name} (weights SHA-256 ${header.model.sha256}); ` +
        `${model.spec.name} is a different model (SHA-256 ${model.spec.sha256})`,
    );
  if (header.engine !== o.engine)
    throw new CompressedFileError(
      `${o.name} was compressed on the ${header.engine} engine; this machine computes with ${o.engine}, whose ` +
        `probabilities differ in the last bits (set ANDROMEDA_CPU_ISA to match)`,
    );
  if (header.context > model.model.config.maxSeqLen)
    throw new CompressedFileError(
      `${o.name}: coded with a ${header.context}-token context, more than the model's ${model.model.config.maxSeqLen}`,
    );
  const out = new Uint8Array(header.length);
  const l = layout(header.length, header.streams);
  const fed = histories(l, model.startToken);
  const predictor = new StreamPredictor(model.model, fed, {
    context: header.context,
    overlap: header.overlap,
    training: trainingOf(model),
  });
  const decoder = new RangeDecoder(payload);
  const coder = byteCoder(header, out, l);
  const vocab = model.model.config.vocabSize;
  try {
    for (let t = 0, done = 0; t < l.chunk; t++) {
      const logits = predictor.logitsAt(t);
      for (let s = 0; s < header.streams; s++) {
        if (t >= streamLength(l, header.length, s)) continue;
        const byte = coder.decode(decoder, logits, s * vocab, s);
        fed[s]![t + 1] = byte;
        out[s * l.chunk + t] = byte;
        done++;
      }
      o.onProgress?.(done, header.length);
    }
  } finally {
    predictor.dispose();
  }
  if (crc32(out) !== header.crc32)
    throw new CompressedFileError(
      `${o.name} is corrupt: the decoded data does not match the CRC32 in its header` +
        (decoder.overrun > 4 ? ' (the file is truncated)' : ''),
    );
  return out;
}
