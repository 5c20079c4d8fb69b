/**
 * A 32-bit range coder with carry propagation (the LZMA construction): the encoder keeps a 33-bit
 * `low` and a 32-bit `range`; bytes leave the top of `low` once the range falls below 2^24, and a
 * carry out of bit 32 is pushed into the pending run of 0xff bytes (`cache` + `pendingBytes`). Symbol
 * frequencies must total at most 2^16, so `range / total` keeps at least 8 bits of precision.
 *
 * All arithmetic is on doubles holding integers below 2^53 (never the 32-bit bitwise operators on
 * values ≥ 2^31), so encoder and decoder compute the same integers on every platform.
 */

const TOP = 2 ** 24;
const TWO_32 = 2 ** 32;
/** The largest frequency total the coder accepts. */
export const MAX_TOTAL = 2 ** 16;

function checkInterval(start: number, size: number, total: number): void {
  if (
    !Number.isInteger(start) ||
    !Number.isInteger(size) ||
    !Number.isInteger(total) ||
    size < 1 ||
    start < 0 ||
    start + size > total ||
    total > MAX_TOTAL
  ) {
    throw new RangeError(`range coder: bad interval start=${start} size=${size} total=${total}`);
  }
}

export class RangeEncoder {
  private low = 0;
  private range = TWO_32 - 1;
  /** The byte held back until we know whether a carry will reach it. */
  private cache = 0;
  /** Bytes held back: `cache` then (pendingBytes − 1) bytes of 0xff. */
  private pendingBytes = 1;
  private out = new Uint8Array(1 << 16);
  private length = 0;
  private finished = false;

  /** Codes the symbol occupying [start, start + size) of a distribution summing to `total`. */
  encode(start: number, size: number, total: number): void {
    checkInterval(start, size, total);
    if (this.finished) throw new Error('range coder: encode after finish');
    const r = Math.floor(this.range / total);
    this.low += r * start;
    this.range = r * size;
    while (this.range < TOP) {
      this.range *= 256;
      this.shiftLow();
    }
  }

  /** Flushes the state and returns the coded bytes (the encoder cannot be used afterwards). */
  finish(): Uint8Array {
    if (!this.finished) {
      for (let i = 0; i < 5; i++) this.shiftLow();
      this.finished = true;
    }
    return this.out.subarray(0, this.length);
  }

  private shiftLow(): void {
    if (this.low < 0xff000000 || this.low >= TWO_32) {
      const carry = this.low >= TWO_32 ? 1 : 0;
      let held = this.cache;
      do {
        this.push((held + carry) & 0xff);
        held = 0xff;
      } while (--this.pendingBytes !== 0);
      this.cache = Math.floor(this.low / TOP) % 256;
    }
    this.pendingBytes++;
    this.low = (this.low % TOP) * 256;
  }

  private push(byte: number): void {
    if (this.length === this.out.length) {
      const grown = new Uint8Array(this.out.length * 2);
      grown.set(this.out);
      this.out = grown;
    }
    this.out[this.length++] = byte;
  }
}

export class RangeDecoder {
  private range = TWO_32 - 1;
  private code = 0;
  private position = 0;
  /** range / total of the symbol being decoded (set by `target`, used by `consume`). */
  private step = 0;

  constructor(private readonly input: Uint8Array) {
    // The encoder's first byte is always 0 (the initial cache): 5 bytes fill the 32-bit code.
    for (let i = 0; i < 5; i++) this.code = (this.code % 2 ** 24) * 256 + this.nextByte();
  }

  /**
   * The cumulative frequency the next symbol's interval contains, in [0, total). Call `consume`
   * with that symbol's interval next.
   */
  target(total: number): number {
    if (!Number.isInteger(total) || total < 1 || total > MAX_TOTAL)
      throw new RangeError(`range coder: bad total ${total}`);
    this.step = Math.floor(this.range / total);
    // Only a damaged stream lands past the last interval; clamping keeps decoding defined, the CRC catches it.
    return Math.min(Math.floor(this.code / this.step), total - 1);
  }

  consume(start: number, size: number, total: number): void {
    checkInterval(start, size, total);
    this.code -= this.step * start;
    this.range = this.step * size;
    while (this.range < TOP) {
      this.code = (this.code % TOP) * 256 + this.nextByte();
      this.range *= 256;
    }
  }

  /** Bytes read past the end of the input (zeros were supplied): more than 5 means the input was cut short. */
  get overrun(): number {
    return Math.max(0, this.position - this.input.length);
  }

  private nextByte(): number {
    const byte = this.position < this.input.length ? this.input[this.position]! : 0;
    this.position++;
    return byte;
  }
}
