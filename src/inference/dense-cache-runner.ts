/**
 * The step runner for Andromeda models whose attention the engine's paged kernel lacks (LongRoPE everywhere; on
 * CUDA a sliding window, logit soft-capping, or a head size the kernel was not built for): each running
 * sequence keeps a contiguous KV cache of its own (src/model/kv-cache.ts) and every step runs each entry's new
 * rows against it, so a token costs one position's forward instead of the whole context's (./recompute-runner.ts,
 * which the engine keeps for models with no cached forward at all).
 *
 * The dense caches grow by doubling, so a sequence may hold twice the positions it has; the block manager's
 * budget counts each position twice to keep the total within the engine's memory (see `denseCacheBlocks`).
 * A sequence's cache goes when the scheduler lets the sequence go (`release`: finished, or preempted to be
 * computed again from its first position).
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { concat, reshape } from '../ops/layout.js';
import type { Andromeda } from '../model/andromeda.js';
import type { KVCache } from '../model/kv-cache.js';
import { PagedKVCache } from '../model/paged-kv-cache.js';
import type { SampledToken, StepLayout } from './scheduler.js';
import type { Sequence } from './sequence.js';
import type { StepRunner } from './step-runner.js';
import { sampleRows, type RequestSampling } from './device-sampling.js';

/** The bytes a block of `blockSize` positions is counted for: twice its K/V (and tails), as the caches double. */
export function denseCacheBytesPerBlock(model: Andromeda, blockSize: number): number {
  return 2 * PagedKVCache.bytesPerBlock(model.config, { blockSize, dtype: model.dtype });
}

/** Blocks of `blockSize` positions the dense caches of this model may hold within `memoryBytes`. */
export function denseCacheBlocks(model: Andromeda, blockSize: number, memoryBytes: number): number {
  return Math.floor(memoryBytes / denseCacheBytesPerBlock(model, blockSize));
}

export class DenseCacheRunner implements StepRunner {
  readonly kvCache = 'per-sequence';
  readonly capturedGraphs = 0;
  private readonly caches = new Map<Sequence, KVCache>();

  constructor(
    private readonly model: Andromeda,
    /** Columns that may be sampled (the tokenizer's vocabulary). */
    private readonly vocab: number,
    readonly numBlocks: number,
  ) {}

  run(step: StepLayout, rows: readonly RequestSampling[]): SampledToken[] {
    const lastLogits = new Map<Sequence, Tensor>();
    return tidy(() =>
      noGrad(() => {
        for (const entry of step.entries) {
          const { sequence, start, count } = entry;
          const cache = this.cacheFor(sequence, start);
          const input = Tensor.fromArray(
            Int32Array.from(sequence.tokens.slice(start, start + count)),
            [1, count],
            'int32',
            this.model.device,
          );
          const logits = this.model.forward(input, { kvCache: cache, logits: 'last' });
          if (entry.samples) lastLogits.set(sequence, reshape(logits, [1, logits.shape[2]!]));
        }
        if (step.sampling.length === 0) return [];
        return sampleRows(
          concat(
            step.sampling.map((sequence) => lastLogits.get(sequence)!),
            0,
          ),
          rows,
          this.vocab,
        );
      }),
    );
  }

  /** The sequence's cache, holding exactly its positions before `start` (a new one from position 0). */
  private cacheFor(sequence: Sequence, start: number): KVCache {
    let cache = this.caches.get(sequence);
    if (cache && cache.length !== start) {
      // Only a sequence computed again from its start (after a preemption the runner was not told of) gets here.
      cache.dispose();
      this.caches.delete(sequence);
      cache = undefined;
    }
    if (!cache) {
      if (start !== 0)
        throw new Error(
          `DenseCacheRunner: sequence ${sequence.id} continues at position ${start}, but its cache is gone`,
        );
      cache = this.model.createKVCache(1, { capacity: Math.max(16, sequence.tokens.length) });
      this.caches.set(sequence, cache);
    }
    return cache;
  }

  release(sequence: Sequence): void {
    this.caches.get(sequence)?.dispose();
    this.caches.delete(sequence);
  }

  dispose(): void {
    for (const cache of this.caches.values()) cache.dispose();
    this.caches.clear();
  }
}
