import type { AdamW8bitMaps } from '../engine/engine.js';

/** Values in each quantization map: one per 8-bit code. */
export const QUANT_MAP_SIZE = 256;
/** Elements that share one float32 absmax (native/fused/adamw8bit/adamw8bit.h: kAdamW8bitBlock). */
export const QUANT_BLOCK = 256;

/**
 * The dynamic quantization map of bitsandbytes' 8-bit optimizers (`create_dynamic_map` with
 * max_exponent_bits = 7, total_bits = 8; Dettmers, "8-Bit Approximations for Parallelism in Deep Learning"):
 * for each decade 10^(i−6), i = 0..6, the midpoints of an even split of [0.1, 1] — 2^i of them per sign for the
 * signed map, 2^(i+1) for the unsigned one — plus 0 and 1, sorted ascending. Small magnitudes keep relative
 * precision, which is what Adam's moments need (v spans many decades). Computed in float64 and rounded once
 * to float32; 256 distinct values, strictly increasing.
 */
export function dynamicQuantMap(signed: boolean): Float32Array {
  const values: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const fractions = signed ? 2 ** i : 2 ** (i + 1);
    const decade = 10 ** (i - 6);
    for (let j = 0; j < fractions; j++) {
      // Midpoint of boundaries j and j + 1 of linspace(0.1, 1, fractions + 1).
      const low = 0.1 + (0.9 * j) / fractions;
      const high = 0.1 + (0.9 * (j + 1)) / fractions;
      const mean = (low + high) / 2;
      values.push(decade * mean);
      if (signed) values.push(-decade * mean);
    }
  }
  if (values.length !== QUANT_MAP_SIZE) throw new Error(`internal: dynamic map has ${values.length} values`);
  return Float32Array.from(values.sort((a, b) => a - b));
}

let cached: AdamW8bitMaps | null = null;

/** The signed map (first moments) and the unsigned map (second moments), built once. */
export function adamw8bitMaps(): AdamW8bitMaps {
  cached ??= { signed: dynamicQuantMap(true), unsigned: dynamicQuantMap(false) };
  return cached;
}

/**
 * The code whose map value is nearest to x (ties to the lower code): the kernels' requantization rule, with
 * their float32 differences (x must be a float32 value).
 */
export function nearestCode(map: Float32Array, x: number): number {
  let lo = 0;
  let hi = map.length - 1;
  if (!(x > map[lo]!)) return lo;
  if (!(x < map[hi]!)) return hi;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (map[mid]! <= x) lo = mid;
    else hi = mid;
  }
  return Math.fround(map[hi]! - x) < Math.fround(x - map[lo]!) ? hi : lo;
}
