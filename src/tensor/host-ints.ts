/**
 * Host copies of int32 tensors made from host arrays (token ids, targets, positions), kept so that
 * ops can check ids without reading them back from the device: on the CUDA engine such a read waits
 * for every kernel queued before it. Only the tensor `Tensor.fromArray` returned has a copy; views and
 * results of ops have none (the library never writes into an int32 tensor in place).
 */
import type { Tensor } from './tensor.js';

const copies = new WeakMap<Tensor, Int32Array>();

/** Records the values `t` was uploaded with (a copy, so later changes to the caller's array don't matter). */
export function rememberHostInts(t: Tensor, uploaded: Int32Array, fromCaller: boolean): void {
  copies.set(t, fromCaller ? uploaded.slice() : uploaded);
}

/** The host values of `t` when it was uploaded from a host array and is still alive, else null. */
export function hostInts(t: Tensor): Int32Array | null {
  if (t.isDisposed) return null;
  return copies.get(t) ?? null;
}
