import '../../src/engine/index.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Tensor } from '../../src/tensor/tensor.js';

/** tests/fixtures/xtransformers-1.20/<name> (the tests run from dist/tests/model). */
export function fixtureDir(name: string): string {
  return join(fileURLToPath(new URL('../../../tests/fixtures/xtransformers-1.20/', import.meta.url)), name);
}

export const FIXTURES = ['orca-tiny', 'andromeda-tiny'] as const;

export function expectedOf(name: string): { loss: number; params: Record<string, number[]> } {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'expected.json'), 'utf8'));
}

/** ‖a − b‖ / ‖b‖ over all elements. */
export function relativeError(actual: ArrayLike<number>, reference: ArrayLike<number>): number {
  if (actual.length !== reference.length)
    throw new Error(`relativeError: ${actual.length} vs ${reference.length} elements`);
  let diff = 0,
    norm = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = actual[i]! - reference[i]!;
    diff += d * d;
    norm += reference[i]! * reference[i]!;
  }
  return Math.sqrt(diff) / Math.sqrt(norm || 1);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function values(t: Tensor): Float64Array {
  return Float64Array.from(t.toArray());
}

/** Random int32 tokens in [0, vocab) from a small LCG (deterministic). */
export function randomTokens(count: number, vocab: number, seed = 1): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: count }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % vocab;
  });
}
