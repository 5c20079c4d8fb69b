/**
 * The step runner an engine gets for its model: the paged forward where the model has one, else
 * recomputation (see ./recompute-runner.ts).
 */
import type { LanguageModel } from '../train/model.js';
import { RecomputeRunner } from './recompute-runner.js';
import type { StepRunner } from './step-runner.js';

export interface StepRunnerOptions {
  blockSize: number;
  /** Blocks of the pool; default: what memoryBytes holds. */
  numBlocks?: number;
  memoryBytes: number;
  maxBatch: number;
  cudaGraphs: boolean;
}

/**
 * Blocks the block manager accounts for a model without a cache pool: with nothing allocated per block,
 * only an explicit numBlocks limits how many positions run at once.
 */
const UNPOOLED_BLOCKS = 1 << 20;

export function createStepRunner(model: LanguageModel, o: StepRunnerOptions): StepRunner {
  const device = model.namedParameters()[0]?.[1].device ?? 'cpu';
  return new RecomputeRunner(model, device, o.numBlocks ?? UNPOOLED_BLOCKS);
}
