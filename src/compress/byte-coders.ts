/**
 * How one byte is coded given the language model's logits for it: by the model's distribution
 * alone (one 256-symbol interval), or bit by bit with the model's probability for each bit mixed
 * into the context-mixing predictor. Encoder and decoder call the same coder in the same order.
 */
import type { RangeDecoder, RangeEncoder } from './range-coder.js';
import { byteAt, probabilityTree, quantizedCumulative, BYTE_SYMBOLS } from './byte-distribution.js';
import { ContextMixer, type ContextMixerVersion, type MixerLayout } from './context-mixer.js';
import { PROBABILITY_ONE, stretch } from './logistic.js';

export interface ByteCoder {
  /**
   * Bits the language model's distribution alone gives the bytes encoded so far (−log2 of each
   * byte's probability): what the model contributes, next to the code actually written.
   */
  readonly modelBits: number;
  /** Codes byte `byte` of `stream`, the model's logits for it at logits[offset .. offset + 256). */
  encode(encoder: RangeEncoder, logits: Float32Array, offset: number, stream: number, byte: number): void;
  decode(decoder: RangeDecoder, logits: Float32Array, offset: number, stream: number): number;
}

/** The model's quantised distribution drives the coder directly: the code length is its cross-entropy. */
export class ModelByteCoder implements ByteCoder {
  private readonly cumulative = new Uint32Array(BYTE_SYMBOLS + 1);
  modelBits = 0;

  encode(encoder: RangeEncoder, logits: Float32Array, offset: number, _stream: number, byte: number): void {
    const c = quantizedCumulative(logits, offset, this.cumulative);
    encoder.encode(c[byte]!, c[byte + 1]! - c[byte]!, c[BYTE_SYMBOLS]!);
    this.modelBits -= Math.log2((c[byte + 1]! - c[byte]!) / c[BYTE_SYMBOLS]!);
  }

  decode(decoder: RangeDecoder, logits: Float32Array, offset: number): number {
    const c = quantizedCumulative(logits, offset, this.cumulative);
    const total = c[BYTE_SYMBOLS]!;
    const byte = byteAt(c, decoder.target(total));
    decoder.consume(c[byte]!, c[byte + 1]! - c[byte]!, total);
    return byte;
  }
}

/** The model's next-bit probability, clamped to 12 bits and stretched, as the mixer's input. */
export function modelBitStretch(tree: Float64Array, partial: number): number {
  const p = tree[2 * partial + 1]! / tree[partial]!;
  return stretch(Math.min(PROBABILITY_ONE - 1, Math.max(1, Math.round(p * PROBABILITY_ONE))));
}

/**
 * Bitwise coding with the context mixer: each bit's 12-bit probability takes an interval of a
 * 4096 total (bit 1 first).
 */
export class MixingByteCoder implements ByteCoder {
  private readonly mixer: ContextMixer;
  private readonly tree = new Float64Array(2 * BYTE_SYMBOLS);
  modelBits = 0;

  /** `buffer`: the input (encoder) or the output being filled (decoder), laid out as `layout` says. */
  constructor(buffer: Uint8Array, layout: MixerLayout, version?: ContextMixerVersion) {
    this.mixer = new ContextMixer(buffer, layout, version);
  }

  encode(encoder: RangeEncoder, logits: Float32Array, offset: number, stream: number, byte: number): void {
    probabilityTree(logits, offset, this.tree);
    this.modelBits -= Math.log2(this.tree[BYTE_SYMBOLS + byte]! / this.tree[1]!);
    this.mixer.beginByte(stream);
    for (let i = 7, partial = 1; i >= 0; i--) {
      const p = this.mixer.predictBit(modelBitStretch(this.tree, partial));
      const bit = (byte >> i) & 1;
      if (bit) encoder.encode(0, p, PROBABILITY_ONE);
      else encoder.encode(p, PROBABILITY_ONE - p, PROBABILITY_ONE);
      this.mixer.updateBit(bit);
      partial = (partial << 1) | bit;
    }
  }

  decode(decoder: RangeDecoder, logits: Float32Array, offset: number, stream: number): number {
    probabilityTree(logits, offset, this.tree);
    this.mixer.beginByte(stream);
    let partial = 1;
    for (let i = 0; i < 8; i++) {
      const p = this.mixer.predictBit(modelBitStretch(this.tree, partial));
      const bit = decoder.target(PROBABILITY_ONE) < p ? 1 : 0;
      if (bit) decoder.consume(0, p, PROBABILITY_ONE);
      else decoder.consume(p, PROBABILITY_ONE - p, PROBABILITY_ONE);
      this.mixer.updateBit(bit);
      partial = (partial << 1) | bit;
    }
    return partial & 0xff;
  }
}
