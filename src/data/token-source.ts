/** Random access to a stream of token ids, in memory or on disk. */
export interface TokenSource {
  /** Number of tokens. */
  readonly length: number;
  /** Tokens [start, start + count); throws RangeError past the end. */
  read(start: number, count: number): Int32Array;
}

export class ArrayTokenSource implements TokenSource {
  constructor(private readonly tokens: Int32Array) {}

  get length(): number {
    return this.tokens.length;
  }

  read(start: number, count: number): Int32Array {
    checkRange(start, count, this.tokens.length, 'token array');
    return this.tokens.slice(start, start + count);
  }
}

export function checkRange(start: number, count: number, length: number, what: string): void {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > length) {
    throw new RangeError(`cannot read tokens [${start}, ${start + count}) from ${what} of ${length} tokens`);
  }
}

/** Several token sources read as one stream, in order. */
export class ConcatTokenSource implements TokenSource {
  private readonly starts: number[] = [];
  readonly length: number;

  constructor(readonly parts: readonly TokenSource[]) {
    let total = 0;
    for (const part of parts) {
      this.starts.push(total);
      total += part.length;
    }
    this.length = total;
  }

  read(start: number, count: number): Int32Array {
    checkRange(start, count, this.length, `${this.parts.length} concatenated source(s)`);
    const out = new Int32Array(count);
    let filled = 0;
    let index = this.partIndex(start);
    while (filled < count) {
      const part = this.parts[index];
      const offset = start + filled - this.starts[index];
      const take = Math.min(count - filled, part.length - offset);
      if (take > 0) out.set(part.read(offset, take), filled);
      filled += take;
      index++;
    }
    return out;
  }

  private partIndex(position: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid] <= position) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
