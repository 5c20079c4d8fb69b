// A cache hint between ops: tensors that a later op will read soon (a decode step's next weights). The CUDA engine
// warms L2 with them while latency-bound kernels leave memory idle; the CPU engine does nothing. No value changes,
// so a tensor that cannot be named as one contiguous extent is left out rather than refused.
import type { Tensor } from '../tensor/tensor.js';
import { assertSameDevice } from './util.js';

/** Warms the device's cache with `tensors`, in order (the engine keeps as many bytes as its cache has room for). */
export function prefetchToCache(tensors: readonly Tensor[]): void {
  const op = 'prefetchToCache';
  if (tensors.length === 0) return;
  assertSameDevice(op, Object.fromEntries(tensors.map((t, i) => [`tensors[${i}]`, t])));
  const items = tensors.filter((t) => t.size > 0 && t.isContiguous()).map((t) => ({ x: t.dense(op), count: t.size }));
  tensors[0]!.engine.prefetchToCache(items);
}
