/**
 * One request as the scheduler sees it: its tokens (context + generated), how many of them have K/V
 * in the cache, its limits, and where its output goes. The scheduler moves it between waiting,
 * running and finished; the engine turns its events into a GenerationStream.
 */
import type { StopTextFilter } from './stop-text.js';

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'timeout' | 'error';

/** Log-probabilities that come with a sampled token when the request asks for them. */
export interface TokenLogprobs {
  /** Log-probability of the chosen token. */
  logprob: number;
  /** The most likely tokens and their log-probabilities, most likely first. */
  topLogprobs?: { tokenId: number; logprob: number }[];
}

/** One generated token as a request streams it. */
export interface TokenEvent {
  tokenId: number;
  /** Text this token completes ('' while a multi-byte character or a possible stop string is incomplete). */
  text: string;
  logprob?: number;
  topLogprobs?: { tokenId: number; logprob: number }[];
}

/** Where a sequence reports its tokens and its end (the engine's stream implements it). */
export interface SequenceSink {
  token(event: TokenEvent): void;
  finish(reason: FinishReason, error?: Error): void;
}

/** Limits that end a request. */
export interface SequenceLimits {
  /** Most tokens to generate. */
  maxTokens: number;
  /** Token ids that end the request (not emitted). */
  stopTokenIds: ReadonlySet<number>;
  /** Decoded text: generation ends before the first stop string, which is not emitted. */
  stopText: StopTextFilter;
  /** Time (ms, on the scheduler's clock) after which the request ends with 'timeout'; null = none. */
  deadline: number | null;
}

export type SequenceStatus = 'waiting' | 'running' | 'finished';

export class Sequence {
  /** Context (prompt) followed by the generated tokens. */
  readonly tokens: number[];
  readonly promptLength: number;
  /** Leading positions whose K/V are in the cache. */
  computed = 0;
  /**
   * Leading positions whose K/V are in the draft model's cache, when the engine speculates (at most
   * `computed`, one less after all of a step's proposals were accepted: the draft never ran its last one).
   */
  draftComputed = 0;
  status: SequenceStatus = 'waiting';
  finishReason: FinishReason | null = null;
  /** Times it lost its blocks to another sequence and went back to the queue. */
  preemptions = 0;

  constructor(
    readonly id: number,
    context: ArrayLike<number>,
    readonly limits: SequenceLimits,
    readonly sink: SequenceSink,
  ) {
    if (context.length === 0) throw new RangeError(`sequence ${id}: the context must hold at least one token`);
    this.tokens = Array.from(context);
    this.promptLength = context.length;
  }

  get generated(): number {
    return this.tokens.length - this.promptLength;
  }

  /** Most positions it may hold in the cache: the last generated token is never fed back. */
  get maxCachedPositions(): number {
    return this.promptLength + Math.max(0, this.limits.maxTokens - 1);
  }
}
