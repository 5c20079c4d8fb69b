/**
 * Per-token losses grouped by the position of the predicting token: the extrapolation curve. Buckets
 * double in width ([0, w), [w, 2w), [2w, 4w), …) so a model's training length and each multiple of it
 * fall on bucket edges.
 */

export interface PositionBucket {
  /** First position in the bucket. */
  readonly start: number;
  /** One past the last position. */
  readonly end: number;
}

export interface BucketStats extends PositionBucket {
  /** Predictions scored in this bucket. */
  readonly tokens: number;
  /** UTF-8 bytes of the predicted tokens (end-of-text counts none). */
  readonly bytes: number;
  /** Mean loss of the bucket's predictions, nats per token. */
  readonly loss: number;
  /** The bucket's total loss per byte of text, in bits. */
  readonly bitsPerByte: number;
  /**
   * Mean loss over every position before `end`: what a causal model scores on windows of `end` tokens, the
   * "loss at evaluation length end" of the ALiBi paper.
   */
  readonly lossUpToEnd: number;
  /** Bits per byte over every position before `end`. */
  readonly bitsPerByteUpToEnd: number;
}

/** Buckets covering positions [0, length): the first `firstWidth` wide, each next one as wide as all before. */
export function positionBuckets(length: number, firstWidth: number): PositionBucket[] {
  if (!Number.isInteger(length) || length < 1)
    throw new RangeError(`positionBuckets: length must be a positive integer, got ${length}`);
  if (!Number.isInteger(firstWidth) || firstWidth < 1)
    throw new RangeError(`positionBuckets: the first bucket's width must be a positive integer, got ${firstWidth}`);
  const buckets: PositionBucket[] = [];
  let start = 0;
  let end = Math.min(firstWidth, length);
  while (start < length) {
    buckets.push({ start, end });
    start = end;
    end = Math.min(2 * end, length);
  }
  return buckets;
}

/** Sums of loss and bytes per position bucket, added to window by window. */
export class BucketAccumulator {
  private readonly nats: Float64Array;
  private readonly bytes: Float64Array;
  private readonly tokens: Float64Array;

  constructor(readonly buckets: readonly PositionBucket[]) {
    if (buckets.length === 0) throw new RangeError('BucketAccumulator: no buckets');
    buckets.forEach((b, i) => {
      const expectedStart = i === 0 ? 0 : buckets[i - 1]!.end;
      if (b.start !== expectedStart || !(b.end > b.start))
        throw new RangeError(`BucketAccumulator: bucket ${i} [${b.start}, ${b.end}) does not continue the previous`);
    });
    this.nats = new Float64Array(buckets.length);
    this.bytes = new Float64Array(buckets.length);
    this.tokens = new Float64Array(buckets.length);
  }

  /** The index of the bucket holding `position`. */
  bucketOf(position: number): number {
    const last = this.buckets[this.buckets.length - 1]!;
    if (!(position >= 0 && position < last.end))
      throw new RangeError(`position ${position} is outside the buckets [0, ${last.end})`);
    let lo = 0;
    let hi = this.buckets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (position < this.buckets[mid]!.end) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** losses[p] and bytes[p]: the prediction made at position p (of the token at p + 1). */
  add(losses: ArrayLike<number>, bytes: ArrayLike<number>): void {
    if (losses.length !== bytes.length)
      throw new RangeError(`BucketAccumulator.add: ${losses.length} losses but ${bytes.length} byte counts`);
    for (let p = 0; p < losses.length; p++) {
      const b = this.bucketOf(p);
      this.nats[b] += losses[p]!;
      this.bytes[b] += bytes[p]!;
      this.tokens[b]++;
    }
  }

  /** The buckets that received predictions, with their means and the running means up to each end. */
  stats(): BucketStats[] {
    const out: BucketStats[] = [];
    let nats = 0;
    let bytes = 0;
    let tokens = 0;
    this.buckets.forEach((bucket, i) => {
      const t = this.tokens[i]!;
      if (t === 0) return;
      nats += this.nats[i]!;
      bytes += this.bytes[i]!;
      tokens += t;
      out.push({
        ...bucket,
        tokens: t,
        bytes: this.bytes[i]!,
        loss: this.nats[i]! / t,
        bitsPerByte: this.bytes[i]! > 0 ? this.nats[i]! / (Math.LN2 * this.bytes[i]!) : NaN,
        lossUpToEnd: nats / tokens,
        bitsPerByteUpToEnd: bytes > 0 ? nats / (Math.LN2 * bytes) : NaN,
      });
    });
    return out;
  }
}
