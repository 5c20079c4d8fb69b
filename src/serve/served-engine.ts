/**
 * The inference engine as the HTTP server sees it. The server runs in its own thread (./http-thread.ts)
 * and reaches the engine, which stays in the main thread, through a message port (./engine-link.ts);
 * benchmarks may also run both in one thread (`inThreadEngine`). Either way the server gets the same
 * GenerationStreams: tokens by listener, one result per choice, `cancel` to free a choice's blocks.
 */
import type { EngineStats, GenerationParams, GenerationStream, InferenceEngine } from '../inference/engine.js';
import { QueueFullError } from '../inference/queue-full-error.js';

export { QueueFullError };

/** One choice of a request: its context (token ids, the leading end-of-document token included) and parameters. */
export interface ChoiceRequest {
  context: Int32Array;
  /** `signal` cancels the choice when aborted. */
  params: GenerationParams;
}

export interface ServedEngine {
  /**
   * Queues every choice of a request, or none: rejects with QueueFullError when the queue is full, a
   * RangeError naming the parameter for bad parameters or a request the cache could never hold, or an
   * Error once the engine is closed.
   */
  submitAll(choices: readonly ChoiceRequest[]): Promise<GenerationStream[]>;
  /** The engine's state (queue, running sequences, cache blocks, throughput), read now. */
  stats(): Promise<EngineStats>;
}

/**
 * Submits every choice to `engine`; on the first refusal cancels those already queued and rethrows it.
 * The one place both the in-thread adapter and the engine's host (./engine-host.ts) queue a request.
 */
export function submitChoices(engine: InferenceEngine, choices: readonly ChoiceRequest[]): GenerationStream[] {
  const streams: GenerationStream[] = [];
  try {
    for (const { context, params } of choices) streams.push(engine.submit(context, params));
    return streams;
  } catch (error) {
    for (const stream of streams) stream.cancel();
    throw error;
  }
}

/** The engine in the server's own thread: every socket write then runs between the engine's steps. */
export function inThreadEngine(engine: InferenceEngine): ServedEngine {
  return {
    submitAll: async (choices) => submitChoices(engine, choices),
    stats: async () => engine.stats(),
  };
}
