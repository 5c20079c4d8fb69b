import { Tensor } from '../tensor/tensor.js';
import type { TokenIndexInput } from '../ops/attention.js';
import type { KVCache, LayerKVCache } from './kv-cache.js';
import type { AndromedaForwardOptions, TokenIndices } from './forward-options.js';

/** What every layer needs to know about the sequence being processed. */
export interface SequenceContext {
  /** [batch, n] positions (reset per document), or null for 0.. (offset by the cache length). */
  readonly positions: TokenIndexInput | null;
  /** [batch, n] document ids on the host (token shift) and device (attention), or null. */
  readonly segments: { readonly host: Int32Array; readonly device: Tensor } | null;
  readonly implementation: 'auto' | 'fused' | 'reference';
}

/** What one layer reads: the sequence, and its own part of the KV cache when decoding. */
export interface LayerState {
  readonly sequence: SequenceContext;
  readonly cache: LayerKVCache | null;
}

export function layerState(sequence: SequenceContext, cache: KVCache | undefined, layer: number): LayerState {
  return { sequence, cache: cache?.layers[layer] ?? null };
}

/**
 * The sequence layout of a forward pass over [batch, n] tokens from its options: segment ids and
 * positions checked (before anything is allocated), then on the host and on `device`; without
 * positions but with segment ids, positions restart at each document.
 */
export function sequenceContext(batch: number, n: number, o: AndromedaForwardOptions, device: string): SequenceContext {
  const host = (t: TokenIndices | undefined, what: string): Int32Array | null => {
    if (!t) return null;
    const values = t instanceof Tensor ? t.toArray() : t;
    if (!(values instanceof Int32Array)) throw new TypeError(`Andromeda.forward: ${what} must be int32`);
    if (values.length !== batch * n)
      throw new RangeError(`Andromeda.forward: ${what} has ${values.length} values, expected [${batch}, ${n}]`);
    return values;
  };
  const segmentIds = host(o.segmentIds, 'segmentIds');
  let positions: TokenIndexInput | null = host(o.positions, 'positions');
  if (!positions && segmentIds) positions = positionsFromSegments(segmentIds, batch, n);
  const segments = segmentIds
    ? { host: segmentIds, device: Tensor.fromArray(segmentIds, [batch, n], 'int32', device) }
    : null;
  if (positions instanceof Int32Array)
    positions = { host: positions, device: Tensor.fromArray(positions, [batch, n], 'int32', device) };
  return { positions, segments, implementation: o.attentionImplementation ?? 'auto' };
}

/** Positions counting from 0 at each change of segment id along a row. */
export function positionsFromSegments(segments: Int32Array, batch: number, n: number): Int32Array {
  const out = new Int32Array(batch * n);
  for (let b = 0; b < batch; b++) {
    let position = 0;
    for (let t = 0; t < n; t++) {
      if (t > 0 && segments[b * n + t] !== segments[b * n + t - 1]) position = 0;
      out[b * n + t] = position++;
    }
  }
  return out;
}
