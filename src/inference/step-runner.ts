/**
 * Runs the model for one scheduled step and returns the logits the step samples from. The engine owns
 * a runner; which one depends on what the model can do (see ./runners.ts).
 */
import type { StepLayout } from './scheduler.js';

export interface StepRunner {
  /** Logit columns per row. */
  readonly vocabSize: number;
  /** Blocks of the cache pool (the block manager hands out ids 0 to numBlocks − 1). */
  readonly numBlocks: number;
  /** Whether positions' K/V live in the pool the block manager accounts (so prefix sharing saves work). */
  readonly paged: boolean;
  /**
   * Logits of the step's logit rows, [logitRows.length, vocabSize] row-major on the host. Writes the K/V of
   * every row of the step into the cache first (paged runners).
   */
  logits(step: StepLayout): Float32Array;
  dispose(): void;
}
