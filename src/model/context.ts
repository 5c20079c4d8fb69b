import type { Tensor } from '../tensor/tensor.js';
import type { TokenIndexInput } from '../ops/attention.js';
import type { LayerKVCache } from './kv-cache.js';

/** What every layer needs to know about the sequence being processed. */
export interface SequenceContext {
  /** [batch, n] positions (reset per document), or null for 0.. (offset by the cache length). */
  readonly positions: TokenIndexInput | null;
  /** [batch, n] document ids on the host (token shift) and device (attention), or null. */
  readonly segments: { readonly host: Int32Array; readonly device: Tensor } | null;
  readonly implementation: 'auto' | 'fused' | 'reference';
}

export interface LayerState {
  readonly sequence: SequenceContext;
  readonly cache: LayerKVCache | null;
}
