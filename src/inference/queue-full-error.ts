/**
 * The engine's refusal of a request when its queue is full (the scheduler's `add` throws it): the caller
 * should retry later (HTTP 429). A module of its own so that the HTTP thread (../serve/engine-link.ts),
 * which rebuilds this error from a message, does not load the engine.
 */
export class QueueFullError extends Error {
  constructor(limit: number) {
    super(`the inference queue is full (${limit} requests waiting); try again later`);
    this.name = 'QueueFullError';
  }
}
