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
