/**
 * The step runner an engine gets for its model: the paged forward for Andromeda models, recomputation
 * for other families and for Andromeda models whose attention the paged kernels lack (a sliding window,
 * dynamic NTK; see pagedAttentionUnsupported), and how the cache pool is sized.
 */
import type { LanguageModel } from '../train/model.js';
import { unwrapAndromeda } from '../train/andromeda-adapter.js';
import { PagedKVCache } from '../model/paged-kv-cache.js';
import { pagedAttentionUnsupported } from '../model/attention.js';
import type { Andromeda } from '../model/andromeda.js';
import { RecomputeRunner } from './recompute-runner.js';
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
  const c = andromeda.config;
  const shape = {
    kernel: 'paged',
    heads: c.heads,
    headDim: c.headDim,
    rotaryDim: c.rotary?.dim ?? 0,
    alibi: c.alibiHeads > 0,
  } as const;
  return andromeda.embedding.weight.engine.fusedAttentionUnsupported(shape) === null ? andromeda : null;
}

export function createStepRunner(model: LanguageModel, o: StepRunnerOptions): StepRunner {
  const andromeda = pagedAndromeda(model);
  const device = model.namedParameters()[0]?.[1].device ?? 'cpu';
  if (!andromeda) return new RecomputeRunner(model, device, o.vocab, o.numBlocks ?? UNPOOLED_BLOCKS);
  const perBlock = PagedKVCache.bytesPerBlock(andromeda.config, { blockSize: o.blockSize, dtype: andromeda.dtype });
  const numBlocks = o.numBlocks ?? Math.floor(o.memoryBytes / perBlock);
  if (numBlocks < 1)
    throw new RangeError(
      `InferenceEngine: memoryBytes ${o.memoryBytes} holds not one KV-cache block ` +
        `(${perBlock} bytes each for this model)`,
    );
  return new PagedRunner(andromeda, {
    numBlocks,
    blockSize: o.blockSize,
    vocab: o.vocab,
    maxBatch: o.maxBatch,
    graphs: device.startsWith('cuda') ? o.cudaGraphs : o.graphsOnCpu,
  });
}

/** Whether the engine runs this model over a paged KV cache (else it recomputes). */
export function hasPagedForward(model: LanguageModel): boolean {
  return pagedAndromeda(model) !== null;
}

/** Bytes one cache block takes for this model (all layers), or null when it has no paged cache. */
export function pagedCacheBytesPerBlock(model: LanguageModel, blockSize: number): number | null {
  const andromeda = pagedAndromeda(model);
  return andromeda ? PagedKVCache.bytesPerBlock(andromeda.config, { blockSize, dtype: andromeda.dtype }) : null;
}
