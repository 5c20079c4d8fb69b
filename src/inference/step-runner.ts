/**
 * Runs the model for one scheduled step and samples the step's logit rows. The engine owns one runner;
 * which one depends on what the model can do (./runners.ts).
 */
import type { RequestSampling } from './device-sampling.js';
import type { SampledToken, StepLayout } from './scheduler.js';
import type { Sequence } from './sequence.js';
import type { DecodeReplayTiming, LaunchedDecode } from './decode-graphs.js';

/**
 * How a runner keeps the model's keys and values: in the paged pool the block manager accounts (so prefix sharing
 * saves work); in a contiguous cache per sequence (./dense-cache-runner.ts); or not at all, each step recomputing
 * the sampled sequences (./recompute-runner.ts).
 */
export type KVCacheKind = 'paged' | 'per-sequence' | 'none';

export interface StepRunner {
  /** Blocks of the cache pool (the block manager hands out ids 0 to numBlocks − 1). */
  readonly numBlocks: number;
  readonly kvCache: KVCacheKind;
  /** Decode graphs captured so far. */
  readonly capturedGraphs: number;
  /** How replayed decode steps spent their time, for runners that replay graphs. */
  readonly decodeReplayTiming?: DecodeReplayTiming | null;
  /**
   * Writes the K/V of every row of the step into the cache (paged runners) and draws the next token of
   * every logit row, `rows[r]` being the sampling state of `step.sampling[r]`.
   */
  run(step: StepLayout, rows: readonly RequestSampling[]): SampledToken[];
  /**
   * Starts a decode-only step on the device and returns before its tokens are read (runners that replay graphs);
   * null when this step cannot be (the caller runs it with `run`). `after`: a launched, uncollected step whose
   * sampled ids are this one's tokens (./decode-graphs.ts DecodeGraphs.launch). Every launch is collected.
   */
  launch?(step: StepLayout, rows: readonly RequestSampling[], after: LaunchedDecode | null): LaunchedDecode | null;
  /** Waits for a launched step's tokens. */
  collect?(launched: LaunchedDecode): SampledToken[];
  /**
   * The scheduler let the sequence go (finished, or preempted to be computed again from its first position):
   * state the runner keeps for it outside the pool can go.
   */
  release?(sequence: Sequence): void;
  dispose(): void;
}
