/**
 * Small deterministic random number generator (xoshiro128**) whose whole state is four
 * uint32 numbers, so data loaders can save it in a JSON checkpoint and resume exactly.
 */
export type RngState = [number, number, number, number];

/** 32-bit FNV-1a hash of a string's UTF-16 code units, mixed with `seed`. */
export function hashString32(text: string, seed = 0): number {
  let hash = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return mix32(hash);
}

/** Final avalanche step of murmur3: spreads every input bit over the output. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any integer (or string); a saved `RngState` continues that stream exactly. */
  constructor(seed: number | string | RngState) {
    if (Array.isArray(seed)) {
      if (seed.length !== 4 || seed.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
        throw new Error(`invalid RNG state ${JSON.stringify(seed)}: expected four uint32 numbers`);
      }
      [this.s0, this.s1, this.s2, this.s3] = seed;
      if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) throw new Error('invalid RNG state: all zero');
      return;
    }
    // splitmix32 expands one seed into four well-mixed, non-zero state words.
    let x = typeof seed === 'string' ? hashString32(seed) : (seed >>> 0) ^ (Math.floor(seed / 0x100000000) >>> 0);
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      return mix32(x) || 1;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  state(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    this.s3 >>>= 0;
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`nextInt bound must be a positive integer, got ${n}`);
    return Math.floor(this.nextFloat() * n);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A random permutation of 0..n-1 (Fisher–Yates), fully determined by `rng`'s state. */
export function randomPermutation(n: number, rng: Rng): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const tmp = out[i];
    out[i] = out[j];
    out[j] = tmp;
  }
  return out;
}
