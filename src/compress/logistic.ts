/**
 * The logistic domain of bitwise context mixing, in integers so that encoder and decoder agree on
 * every platform (no Math.exp, whose last bit JavaScript engines may compute differently).
 * Probabilities are 12-bit (0..4095 for P(bit = 1)); "stretched" values are ln(p / (1 − p)) scaled
 * by 256 and clamped to ±2047. `squash` interpolates the logistic function between 33 knots
 * (the table of Mahoney's lpaq); `stretch` is its exact inverse over the 4096 probabilities.
 */

export const PROBABILITY_BITS = 12;
export const PROBABILITY_ONE = 1 << PROBABILITY_BITS;
export const STRETCH_LIMIT = 2047;

const KNOTS = [
  1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785, 3901, 3975,
  4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094,
];

/** 4096 · 1 / (1 + e^(−d/256)) for an integer d, clamped to [1, 4095]. */
export function squash(d: number): number {
  if (d > STRETCH_LIMIT) return PROBABILITY_ONE - 1;
  if (d < -STRETCH_LIMIT) return 1;
  const w = d & 127;
  const i = (d >> 7) + 16;
  return Math.max(1, (KNOTS[i]! * (128 - w) + KNOTS[i + 1]! * w + 64) >> 7);
}

const STRETCH = (() => {
  const table = new Int16Array(PROBABILITY_ONE);
  let pi = 0;
  for (let x = -STRETCH_LIMIT; x <= STRETCH_LIMIT; x++) {
    const v = squash(x);
    for (let p = pi; p <= v; p++) table[p] = x;
    pi = v + 1;
  }
  for (let p = pi; p < PROBABILITY_ONE; p++) table[p] = STRETCH_LIMIT;
  return table;
})();

/** The inverse of `squash` for a 12-bit probability. */
export function stretch(p: number): number {
  return STRETCH[p]!;
}
