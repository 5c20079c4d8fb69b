/**
 * What `InferenceEngine.submit` returns: the tokens of one request as an async iterable, and its final
 * result as a promise. Events are buffered, so a consumer may start iterating late and still sees
 * every token; one consumer iterates a stream. A consumer of many streams at once (the server) may
 * `listen` instead: its callbacks get each token synchronously, in the engine's step, with no promise
 * per token.
 */
import type { FinishReason, SequenceSink, TokenEvent } from './sequence.js';

export type { FinishReason, TokenEvent };

export interface GenerationUsage {
  /** Tokens of the context the model was given (the leading end-of-document token included). */
  promptTokens: number;
  /** Tokens generated: one per token event, a final stop token included. */
  completionTokens: number;
}

export interface GenerationResult {
  /** The emitted text (stop strings and the text of stop tokens excluded). */
  text: string;
  /** Every generated token id, in order (a final stop token included). */
  tokenIds: number[];
  finishReason: FinishReason;
  usage: GenerationUsage;
  /** Milliseconds from submit to the first token (null when none came). */
  timeToFirstTokenMs: number | null;
  /** Milliseconds from submit to the end. */
  totalMs: number;
  /** Why the request failed (finishReason 'error'). */
  error?: Error;
}

/** Receives one stream's events as the engine produces them (see `GenerationStream.listen`). */
export interface GenerationListener {
  /** One token, called within the engine's step: it should only record or queue the event. */
  token(event: TokenEvent): void;
  /** The request ended: the result that `result` resolves to. */
  end(result: GenerationResult): void;
}

export class GenerationStream implements AsyncIterable<TokenEvent> {
  /** The final result; it resolves (never rejects) when the request ends for whatever reason. */
  readonly result: Promise<GenerationResult>;
  private resolveResult!: (result: GenerationResult) => void;
  private readonly buffered: TokenEvent[] = [];
  private wake: (() => void) | null = null;
  private consumed: 'iterated' | 'listened' | null = null;
  private listener: GenerationListener | null = null;
  /** What a listener threw: the request ends with it ('error'). */
  private listenerError: Error | null = null;
  private finished: GenerationResult | null = null;
  private text = '';
  private readonly tokenIds: number[] = [];
  private firstTokenAt: number | null = null;
  private readonly submittedAt = Date.now();

  /**
   * @internal Built by the engine (and, for the HTTP thread, by its link to the engine: ../serve/engine-link.ts);
   * `cancel` ends the request and frees its blocks.
   */
  constructor(
    readonly id: number,
    /** Tokens of the context the model is given. */
    readonly promptTokens: number,
    private readonly cancelRequest: () => void,
  ) {
    this.result = new Promise((resolve) => (this.resolveResult = resolve));
  }

  /** Ends the request now ('cancelled'); its cache blocks are freed at once. No effect once it ended. */
  cancel(): void {
    if (!this.finished) this.cancelRequest();
  }

  /** Milliseconds since submit. */
  get elapsedMs(): number {
    return Date.now() - this.submittedAt;
  }

  /** True once the request has ended. */
  get done(): boolean {
    return this.finished !== null;
  }

  /**
   * Token events until the request ends. Leaving the loop early (break, return, throw) cancels the
   * request. A request that fails ('error') throws its error from the iteration after its last event.
   */
  [Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    this.claim('iterated');
    return {
      next: async (): Promise<IteratorResult<TokenEvent>> => {
        for (;;) {
          const event = this.buffered.shift();
          if (event) return { value: event, done: false };
          if (this.finished) {
            if (this.finished.error) throw this.finished.error;
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      },
      return: async (): Promise<IteratorResult<TokenEvent>> => {
        this.cancel();
        return { value: undefined, done: true };
      },
    };
  }

  /**
   * Hands every event to `listener` instead of iterating: events so far at once, later ones synchronously
   * as the engine emits them, then `end` once. A listener whose `token` throws gets no more tokens: its
   * request is cancelled after the current step and ends as 'error' with what it threw (`end` says so).
   */
  listen(listener: GenerationListener): void {
    this.claim('listened');
    this.listener = listener;
    for (const event of this.buffered.splice(0)) this.deliver(event);
    if (this.finished) this.deliverEnd(this.finished);
  }

  private claim(how: 'iterated' | 'listened'): void {
    if (this.consumed)
      throw new Error(`GenerationStream ${this.id}: the stream is already ${this.consumed}; one consumer per stream`);
    this.consumed = how;
  }

  private deliver(event: TokenEvent): void {
    if (this.listenerError) return;
    try {
      this.listener!.token(event);
    } catch (error) {
      this.listenerError = error instanceof Error ? error : new Error(String(error));
      // Not now: the engine is in the middle of its step, handing out this token.
      queueMicrotask(() => this.cancel());
    }
  }

  private deliverEnd(result: GenerationResult): void {
    const listener = this.listener!;
    this.listener = null;
    try {
      listener.end(result);
    } catch {
      // Nothing is left to do for this request: its result has resolved, and the engine's step goes on.
    }
  }

  /** @internal The scheduler's side. */
  readonly sink: SequenceSink = {
    token: (event) => {
      this.firstTokenAt ??= Date.now();
      this.text += event.text;
      this.tokenIds.push(event.tokenId);
      if (this.listener) this.deliver(event);
      else if (this.consumed !== 'listened') {
        this.buffered.push(event);
        this.notify();
      }
    },
    finish: (reason, cause) => {
      const now = Date.now();
      const [finishReason, error] = this.listenerError ? (['error', this.listenerError] as const) : [reason, cause];
      this.finished = {
        text: this.text,
        tokenIds: this.tokenIds,
        finishReason,
        usage: { promptTokens: this.promptTokens, completionTokens: this.tokenIds.length },
        timeToFirstTokenMs: this.firstTokenAt === null ? null : this.firstTokenAt - this.submittedAt,
        totalMs: now - this.submittedAt,
      };
      if (error) this.finished.error = error;
      this.resolveResult(this.finished);
      if (this.listener) this.deliverEnd(this.finished);
      else this.notify();
    },
  };

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
