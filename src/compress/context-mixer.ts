/**
 * A bitwise context-mixing predictor (after Mahoney's lpaq) that refines the language model's
 * next-byte distribution as coding goes: each bit of a byte is predicted by adaptive counters
 * under hashed order-1…6 and word contexts, an order-0 counter, a match model (the byte that
 * followed the last occurrence of the current 6-byte context) and the language model's own
 * probability for that bit. Two gated linear mixers in the logistic domain (weights chosen by the
 * bits so far and the match length, or by the previous byte) combine them, and two adaptive
 * probability maps (SSE) correct the result: one keyed by the language model's probability for the
 * bit (in 32 bands) and the bits so far, so the mix is recalibrated by how sure the model is, the
 * other by the last two bytes. Everything learns from the bits coded so
 * far, so the decoder, fed the same bits in the same order, reproduces every prediction.
 *
 * Streams coded side by side share all tables (what one part of the file teaches helps the
 * others) but keep their own contexts. The match model may point into any stream, but only at
 * bytes already coded: `coded[s]` counts them, and the encoder's buffer (the whole input) is read
 * through that rule only, exactly what the decoder has.
 *
 * Arithmetic: counters (float32) and mixer weights (float64) are updated with + − × ÷ only
 * (IEEE-exact in JavaScript, float32 rounded on store), squash/stretch are integer tables, hashes
 * are 32-bit `Math.imul`: no platform-dependent rounding. Memory: up to about 150 MB, mostly the
 * 6 × 2^22 hashed counters (from 128 kB of input on; smaller inputs get smaller tables).
 */
import { PROBABILITY_ONE, squash, stretch } from './logistic.js';

/**
 * The predictor's version, recorded in every file coded with it. Files record the version that coded
 * them and decode with that version's predictions: 1 keyed the first SSE stage by the bits so far
 * alone, 2 by the model's probability band too. A version this code does not know is refused by name.
 */
export const CONTEXT_MIXER_VERSION = 2;
export const CONTEXT_MIXER_VERSIONS: readonly number[] = [1, 2];
export type ContextMixerVersion = 1 | 2;

/** Hashed contexts: orders 1, 2, 3, 4, 6 and the current word. */
const HASHED = 6;
/**
 * Slots per hashed context: four per input bit (each coded bit touches one; fewer collide more and
 * cost ~0.5% at 100 kB), from 2^16 to 2^22.
 */
const MIN_TABLE_BITS = 16;
const MAX_TABLE_BITS = 22;
/** Inputs: the hashed contexts, order 0, the match model, the language model, a bias. */
const INPUTS = HASHED + 4;
const MATCH_MIN = 6;
const MATCH_MAX_VERIFY = 32;
const MATCH_LENGTH_BUCKETS = 16;
const MATCH_TABLE_BITS = 20;
/** Counter adaptation: rate 1/(n + 1.5) for the n-th update, then fixed at 1/(limit + 1.5) (tracks change). */
const COUNTER_LIMIT = 250;
const MIXER_RATE = 0.0025;
/** Weight sets of the first mixer: the bits so far (256 values) × 4 match-length classes. */
const MIXER_SETS = 256 * 4;
/** Bands of the language model's stretched probability (±2047) that key the first SSE stage. */
const MODEL_BANDS = 32;
const APM_BUCKETS = 33;
const APM_RATE = 1 / 64;

function hash2(a: number, b: number): number {
  let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  return (h ^ (h >>> 15)) >>> 0;
}

/** Adaptive P(bit = 1) counters: float32 probabilities with per-slot update counts. */
class Counters {
  readonly p: Float32Array;
  readonly n: Uint8Array;
  constructor(size: number) {
    this.p = new Float32Array(size).fill(0.5);
    this.n = new Uint8Array(size);
  }
  probability12(i: number): number {
    return Math.min(PROBABILITY_ONE - 1, Math.max(1, Math.floor(this.p[i]! * PROBABILITY_ONE)));
  }
  update(i: number, bit: number): void {
    const n = this.n[i]!;
    this.p[i]! += (bit - this.p[i]!) / (n + 1.5);
    if (n < COUNTER_LIMIT) this.n[i] = n + 1;
  }
}

/** An adaptive probability map: refines a probability given a small context, interpolating 33 buckets. */
class Apm {
  private readonly t: Float64Array;
  private index = 0;
  constructor(contexts: number) {
    this.t = new Float64Array(contexts * APM_BUCKETS);
    for (let c = 0; c < contexts; c++)
      for (let j = 0; j < APM_BUCKETS; j++) this.t[c * APM_BUCKETS + j] = squash((j - 16) * 128) / PROBABILITY_ONE;
  }
  refine(p12: number, context: number): number {
    const s = stretch(p12) + 2048; // 1 .. 4095
    const lo = s >> 7;
    const w = (s & 127) / 128;
    const base = context * APM_BUCKETS + lo;
    this.index = w < 0.5 ? base : base + 1;
    const p = this.t[base]! * (1 - w) + this.t[base + 1]! * w;
    return Math.min(PROBABILITY_ONE - 1, Math.max(1, Math.floor(p * PROBABILITY_ONE)));
  }
  update(bit: number): void {
    this.t[this.index]! += (bit - this.t[this.index]!) * APM_RATE;
  }
}

export interface MixerLayout {
  readonly streams: number;
  /** Bytes per stream; stream s occupies buffer[s·chunk, s·chunk + its length). */
  readonly chunk: number;
}

export class ContextMixer {
  private readonly tableBits: number;
  private readonly hashed: Counters;
  private readonly order0 = new Counters(256);
  private readonly match = new Counters(MATCH_LENGTH_BUCKETS * 2);
  private readonly matchTable = new Int32Array(1 << MATCH_TABLE_BITS);
  private readonly weights = new Float64Array(MIXER_SETS * INPUTS).fill(0.3);
  /** A second mixer whose weights are chosen by the previous byte; the two outputs are averaged. */
  private readonly weightsByPrevious = new Float64Array(256 * INPUTS).fill(0.3);
  /** The first SSE stage: by the model's band and the bits so far (version 2), or the bits alone (1). */
  private readonly apmModel: Apm;
  private readonly apmOrder2 = new Apm(1 << 16);

  // Per-stream contexts.
  private readonly coded: Int32Array;
  private readonly last4: Int32Array;
  private readonly before4: Int32Array;
  private readonly word: Int32Array;
  private readonly matchPtr: Int32Array;
  private readonly matchLength: Int32Array;

  // The byte being coded.
  private stream = 0;
  private partial = 1; // the bits so far behind a leading 1 (1 .. 255)
  private bitIndex = 0;
  private expected = -1;
  private readonly base = new Uint32Array(HASHED);
  private readonly slots = new Int32Array(HASHED);
  private readonly inputs = new Float64Array(INPUTS);
  private matchSlot = -1;
  private weightSet = 0;
  private previousSet = 0;
  private mixedByPosition = 0;
  private mixedByPrevious = 0;
  private mixed = 0;
  private apmContext = 0;

  /** `buffer`: the input (encoder) or the output being filled (decoder); only coded bytes are read. */
  constructor(
    private readonly buffer: Uint8Array,
    private readonly l: MixerLayout,
    private readonly version: ContextMixerVersion = CONTEXT_MIXER_VERSION,
  ) {
    this.apmModel = new Apm(version === 1 ? 256 : MODEL_BANDS * 256);
    let bits = MIN_TABLE_BITS;
    while (bits < MAX_TABLE_BITS && 2 ** bits < 32 * l.streams * l.chunk) bits++;
    this.tableBits = bits;
    this.hashed = new Counters(HASHED * 2 ** bits);
    const s = l.streams;
    this.coded = new Int32Array(s);
    this.last4 = new Int32Array(s);
    this.before4 = new Int32Array(s);
    this.word = new Int32Array(s);
    this.matchPtr = new Int32Array(s);
    this.matchLength = new Int32Array(s);
  }

  /** Starts the next byte of stream `s` (its previous bytes must be in the buffer). */
  beginByte(s: number): void {
    this.stream = s;
    this.partial = 1;
    this.bitIndex = 0;
    const c4 = this.last4[s]!;
    const c8 = this.before4[s]!;
    this.base[0] = hash2(c4 & 0xff, 1);
    this.base[1] = hash2(c4 & 0xffff, 2);
    this.base[2] = hash2(c4 & 0xffffff, 3);
    this.base[3] = hash2(c4, 4);
    this.base[4] = hash2(c4, hash2(c8 & 0xffff, 6));
    this.base[5] = hash2(this.word[s]!, 7);
    this.findMatch(s);
  }

  /** P(next bit = 1) in 12 bits, given the language model's stretched probability for it. */
  predictBit(modelStretch: number): number {
    const c0 = this.partial;
    const x = this.inputs;
    for (let i = 0; i < HASHED; i++) {
      const slot = (i << this.tableBits) + (hash2(this.base[i]!, c0) >>> (32 - this.tableBits));
      this.slots[i] = slot;
      x[i] = stretch(this.hashed.probability12(slot)) / 256;
    }
    x[HASHED] = stretch(this.order0.probability12(c0)) / 256;
    let lengthBucket = 0;
    this.matchSlot = -1;
    if (this.expected >= 0 && (this.expected | 256) >> (8 - this.bitIndex) === c0) {
      const expectedBit = (this.expected >> (7 - this.bitIndex)) & 1;
      const length = Math.min(this.matchLength[this.stream]!, MATCH_LENGTH_BUCKETS - 1);
      this.matchSlot = length * 2 + expectedBit;
      x[HASHED + 1] = stretch(this.match.probability12(this.matchSlot)) / 256;
      lengthBucket = length < 8 ? 1 : length < 15 ? 2 : 3;
    } else x[HASHED + 1] = 0;
    x[HASHED + 2] = modelStretch / 256;
    x[HASHED + 3] = 1;
    this.weightSet = (lengthBucket * 256 + c0) * INPUTS;
    this.previousSet = (this.last4[this.stream]! & 0xff) * INPUTS;
    let dot = 0;
    let dotByPrevious = 0;
    for (let i = 0; i < INPUTS; i++) {
      dot += this.weights[this.weightSet + i]! * x[i]!;
      dotByPrevious += this.weightsByPrevious[this.previousSet + i]! * x[i]!;
    }
    this.mixedByPosition = squash(Math.round(dot * 256));
    this.mixedByPrevious = squash(Math.round(dotByPrevious * 256));
    this.mixed = squash(Math.round((dot + dotByPrevious) * 128));
    this.apmContext = hash2(this.last4[this.stream]! & 0xffff, c0) & 0xffff;
    const band = this.version === 1 ? 0 : ((modelStretch + 2048) * MODEL_BANDS) >> 12;
    const refinedByModel = this.apmModel.refine(this.mixed, band * 256 + c0);
    const refined2 = this.apmOrder2.refine(this.mixed, this.apmContext);
    const p = (this.mixed + refinedByModel + 2 * refined2 + 2) >> 2;
    return Math.min(PROBABILITY_ONE - 1, Math.max(1, p));
  }

  /** Learns the coded bit; after the 8th, the byte is complete. */
  updateBit(bit: number): void {
    const err = (bit - this.mixedByPosition / PROBABILITY_ONE) * MIXER_RATE;
    const errByPrevious = (bit - this.mixedByPrevious / PROBABILITY_ONE) * MIXER_RATE;
    for (let i = 0; i < INPUTS; i++) {
      this.weights[this.weightSet + i]! += err * this.inputs[i]!;
      this.weightsByPrevious[this.previousSet + i]! += errByPrevious * this.inputs[i]!;
    }
    for (let i = 0; i < HASHED; i++) this.hashed.update(this.slots[i]!, bit);
    this.order0.update(this.partial, bit);
    if (this.matchSlot >= 0) this.match.update(this.matchSlot, bit);
    this.apmModel.update(bit);
    this.apmOrder2.update(bit);
    this.partial = (this.partial << 1) | bit;
    if (++this.bitIndex === 8) this.endByte(this.partial & 0xff);
  }

  private endByte(byte: number): void {
    const s = this.stream;
    this.before4[s] = (this.before4[s]! << 8) | (this.last4[s]! >>> 24);
    this.last4[s] = (this.last4[s]! << 8) | byte;
    const lower = byte >= 65 && byte <= 90 ? byte + 32 : byte;
    this.word[s] = lower >= 97 && lower <= 122 ? Math.imul(this.word[s]! ^ lower, 0x01000193) : 0;
    if (this.matchLength[s]! > 0) {
      if (byte === this.expected && (this.matchPtr[s]! + 1) % this.l.chunk !== 0) {
        this.matchPtr[s]!++;
        this.matchLength[s]!++;
      } else this.matchLength[s] = 0;
    }
    this.coded[s]!++;
  }

  private isCoded(offset: number): boolean {
    const s = Math.floor(offset / this.l.chunk);
    return s < this.l.streams && offset - s * this.l.chunk < this.coded[s]!;
  }

  /** Sets `expected` for stream s's next byte: continues the current match or looks a new one up. */
  private findMatch(s: number): void {
    const t = this.coded[s]!;
    const here = s * this.l.chunk + t;
    this.expected = -1;
    if (t < MATCH_MIN) return;
    const key = hash2(this.last4[s]!, this.before4[s]! & 0xffff) >>> (32 - MATCH_TABLE_BITS);
    if (this.matchLength[s] === 0) {
      const candidate = this.matchTable[key]! - 1;
      if (candidate >= 0) {
        const candidateStart = Math.floor(candidate / this.l.chunk) * this.l.chunk;
        let length = 0;
        while (
          length < MATCH_MAX_VERIFY &&
          length < t &&
          candidate - length - 1 >= candidateStart &&
          this.buffer[candidate - length - 1] === this.buffer[here - length - 1]
        )
          length++;
        if (length >= MATCH_MIN) {
          this.matchPtr[s] = candidate;
          this.matchLength[s] = length;
        }
      }
    }
    this.matchTable[key] = here + 1;
    const ptr = this.matchPtr[s]!;
    if (this.matchLength[s]! > 0 && this.isCoded(ptr)) this.expected = this.buffer[ptr]!;
    else this.matchLength[s] = 0;
  }
}
