import type { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './kv-cache.js';

/** A [batch, n] int32 per-token index, as host values or a tensor. */
export type TokenIndices = Int32Array | Tensor;

/** What a forward pass of a language model over token rows [batch, n] reads and computes. */
export interface ForwardOptions {
  /** Document ids for packed sequences: attention and token shift stay within a document. */
  segmentIds?: TokenIndices;
  /**
   * Positions for rotary, xPos and ALiBi; by default 0.. (or, with segmentIds, counting from each document's start).
   */
  positions?: TokenIndices;
  /**
   * 'all' (default): logits for every position, [batch, n, vocab]. 'last': only for each row's last
   * position, [batch, 1, vocab] — what generation needs after a prompt, without the [n, vocab] head.
   */
  logits?: 'all' | 'last';
  /**
   * Keep only each block's input during training and recompute the block in the backward pass (about
   * one more forward per step, for a fraction of the activation memory).
   */
  activationCheckpointing?: boolean;
}

/** Andromeda's forward pass also decodes incrementally and lets tests pick the attention kernel. */
export interface AndromedaForwardOptions extends ForwardOptions {
  /** Decode incrementally: tokens continue the cached sequence (runs without autograd). */
  kvCache?: KVCache;
  /** Force the fused or the reference attention; default 'auto'. */
  attentionImplementation?: 'auto' | 'fused' | 'reference';
}
