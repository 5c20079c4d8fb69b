// Wall time per engine kernel, for the CPU benches' profiles: wraps the engine's methods in place.
import type { Engine } from '../src/engine/engine.js';

const KERNELS = [
  'copy',
  'fill',
  'unary',
  'unaryGrad',
  'binary',
  'reduce',
  'matmul',
  'softmax',
  'softmaxGrad',
  'norm',
  'normGrad',
  'crossEntropy',
  'crossEntropyGrad',
  'embedding',
  'embeddingGrad',
  'adamw',
  'attentionForward',
  'attentionBackward',
  'upload',
  'download',
] as const;

export interface KernelProfile {
  /** Milliseconds and calls per kernel since the last reset. */
  read(): Record<string, { ms: number; calls: number }>;
  reset(): void;
}

export function profileKernels(engine: Engine): KernelProfile {
  const totals = new Map<string, { ms: number; calls: number }>();
  const target = engine as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of KERNELS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = function (this: unknown, ...args: unknown[]) {
      const start = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        const entry = totals.get(name) ?? { ms: 0, calls: 0 };
        entry.ms += performance.now() - start;
        entry.calls++;
        totals.set(name, entry);
      }
    };
  }
  return {
    read: () =>
      Object.fromEntries(
        [...totals]
          .sort((a, b) => b[1].ms - a[1].ms)
          .map(([k, v]) => [k, { ms: Math.round(v.ms * 10) / 10, calls: v.calls }]),
      ),
    reset: () => totals.clear(),
  };
}
