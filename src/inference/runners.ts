/**
 * The step runner an engine gets for its model, and how its cache is sized: the paged forward for Andromeda
 * models whose attention the engine's paged kernel takes (pagedAttentionUnsupported, then
 * Engine.fusedAttentionUnsupported: a sliding window and soft-capping on the CPU only, the head sizes it was built
 * for); a contiguous KV cache per sequence for the other Andromeda models (LongRoPE; on CUDA windows, soft-caps and
 * other head sizes); recomputation for dynamic NTK (denseCacheExact) and for other families.
 */
import type { LanguageModel } from '../train/model.js';
import { unwrapAndromeda } from '../train/andromeda-adapter.js';
import { PagedKVCache } from '../model/paged-kv-cache.js';
import { denseCacheExact, pagedAttentionShape, pagedAttentionUnsupported } from '../model/attention.js';
import type { Andromeda } from '../model/andromeda.js';
import { RecomputeRunner } from './recompute-runner.js';
import { DenseCacheRunner, denseCacheBlocks, denseCacheBytesPerBlock } from './dense-cache-runner.js';
import { PagedRunner } from './paged-runner.js';
import type { StepRunner } from './step-runner.js';

export interface StepRunnerOptions {
  blockSize: number;
  /** Blocks of the pool; default: what memoryBytes holds. */
  numBlocks?: number;
  memoryBytes: number;
  /** Columns that may be sampled (the tokenizer's vocabulary). */
  vocab: number;
  maxBatch: number;
  /** Replay decode steps as graphs on CUDA devices. */
  cudaGraphs: boolean;
  /** Also on the CPU engine (whose graphs rerun their step: for testing the path). */
  graphsOnCpu: boolean;
  /**
   * Speculative decoding: the draft model, which keeps its own pool over the same block tables (so each
   * block of the budget holds both models' K/V), and the proposals per step (which size the tails' ring).
   */
  draft?: { model: Andromeda; tokens: number };
}

/**
 * Blocks the block manager accounts for a model without a cache pool: with nothing allocated per block,
 * only an explicit numBlocks limits how many positions run at once.
 */
const UNPOOLED_BLOCKS = 1 << 20;

/**
 * The Andromeda model under `model` when its paged forward can run it: attention features the paged kernels
 * have (pagedAttentionUnsupported) and a head shape the engine's paged kernel takes.
 */
function pagedAndromeda(model: LanguageModel): Andromeda | null {
  const andromeda = unwrapAndromeda(model);
  if (!andromeda || pagedAttentionUnsupported(andromeda.config) !== null) return null;
  const unsupported = andromeda.embedding.weight.engine.fusedAttentionUnsupported(
    pagedAttentionShape(andromeda.config),
  );
  return unsupported === null ? andromeda : null;
}

export function createStepRunner(model: LanguageModel, o: StepRunnerOptions): StepRunner {
  const andromeda = pagedAndromeda(model);
  const device = model.namedParameters()[0]?.[1].device ?? 'cpu';
  if (!andromeda) {
    if (o.draft)
      throw new RangeError(
        'InferenceEngine: speculative decoding needs a target model that decodes over a paged KV cache ' +
          '(an Andromeda model whose attention the paged kernels support)',
      );
    const dense = unwrapAndromeda(model);
    if (!dense || !denseCacheExact(dense.config))
      return new RecomputeRunner(model, device, o.vocab, o.numBlocks ?? UNPOOLED_BLOCKS);
    const numBlocks = o.numBlocks ?? denseCacheBlocks(dense, o.blockSize, o.memoryBytes);
    if (numBlocks < 1)
      throw new RangeError(
        `InferenceEngine: memoryBytes ${o.memoryBytes} holds not one block of ${o.blockSize} positions ` +
          "of this model's KV caches",
      );
    return new DenseCacheRunner(dense, o.vocab, numBlocks);
  }
  const layout = (m: Andromeda): { blockSize: number; dtype: Andromeda['dtype']; ring?: number } => ({
    blockSize: o.blockSize,
    dtype: m.dtype,
    ring: o.draft ? speculativeRing(m, o.draft.tokens) : undefined,
  });
  let perBlock = PagedKVCache.bytesPerBlock(andromeda.config, layout(andromeda));
  if (o.draft) perBlock += PagedKVCache.bytesPerBlock(o.draft.model.config, layout(o.draft.model));
  const numBlocks = o.numBlocks ?? Math.floor(o.memoryBytes / perBlock);
  if (numBlocks < 1)
    throw new RangeError(
      `InferenceEngine: memoryBytes ${o.memoryBytes} holds not one KV-cache block ` +
        `(${perBlock} bytes each for this model${o.draft ? ' and its draft' : ''})`,
    );
  return new PagedRunner(andromeda, {
    numBlocks,
    blockSize: o.blockSize,
    vocab: o.vocab,
    maxBatch: o.maxBatch,
    graphs: device.startsWith('cuda') ? o.cudaGraphs : o.graphsOnCpu,
    ring: layout(andromeda).ring,
  });
}

/**
 * Token-shift tail slots per cache block when steps score `draftTokens` proposals: shifts + draftTokens, so
 * that the rejected positions a step writes never land on a slot the next step reads (none without shifts).
 */
export function speculativeRing(model: Andromeda, draftTokens: number): number | undefined {
  const shifts = model.config.shiftTokens;
  return shifts > 0 ? shifts + draftTokens : undefined;
}

/** The Andromeda model under `model` when it decodes over a paged KV cache (else null). */
export function pagedAndromedaOf(model: LanguageModel): Andromeda | null {
  return pagedAndromeda(model);
}

/** Whether the engine runs this model over a paged KV cache (else a cache per sequence, or recomputation). */
export function hasPagedForward(model: LanguageModel): boolean {
  return pagedAndromeda(model) !== null;
}

/** Bytes one cache block takes for this model (all layers), or null when it has no paged cache. */
export function pagedCacheBytesPerBlock(model: LanguageModel, blockSize: number): number | null {
  const andromeda = pagedAndromeda(model);
  return andromeda ? PagedKVCache.bytesPerBlock(andromeda.config, { blockSize, dtype: andromeda.dtype }) : null;
}

/**
 * Bytes of cache memory the engine counts a block of positions for, whichever way it keeps this model's K/V: a
 * block of the paged pool, or twice that in a cache per sequence (./dense-cache-runner.ts); null when it keeps
 * none (recomputation).
 */
export function kvCacheBytesPerBlock(model: LanguageModel, blockSize: number): number | null {
  const paged = pagedCacheBytesPerBlock(model, blockSize);
  if (paged !== null) return paged;
  const andromeda = unwrapAndromeda(model);
  return andromeda && denseCacheExact(andromeda.config) ? denseCacheBytesPerBlock(andromeda, blockSize) : null;
}
