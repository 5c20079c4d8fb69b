/**
 * The engine's side of the port to the HTTP thread (./engine-link.ts is the other): requests come in as
 * messages and are queued on the engine; the tokens of every stream go back in one message per engine
 * step. Everything the server does per token — chunks, JSON, socket writes — then runs in the HTTP
 * thread, beside the engine's steps instead of between them; what the engine's thread adds per token is
 * one record of that message.
 */
import type { MessagePort } from 'node:worker_threads';
import { QueueFullError, type GenerationStream, type InferenceEngine } from '../inference/engine.js';
import { submitChoices } from './served-engine.js';
import {
  endMarker,
  type HostMessage,
  type LinkMessage,
  type RefusalKind,
  type TokenRecords,
} from './engine-messages.js';

/** Anything messages can be posted to and received from: a Worker or a MessagePort. */
export interface MessageChannelEnd {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

function refusalOf(error: unknown): RefusalKind {
  if (error instanceof QueueFullError) return 'queue-full';
  if (error instanceof RangeError) return 'range';
  return 'other';
}

export class EngineHost {
  /** Streams not yet ended, by the engine's stream id (for cancellations). */
  private readonly streams = new Map<number, GenerationStream>();
  /** The current step's records, and whether a flush after the step is queued. */
  private records: TokenRecords = [];
  private flushQueued = false;
  private readonly onMessage = (message: unknown): void => this.receive(message as LinkMessage);

  constructor(
    private readonly engine: InferenceEngine,
    private readonly port: MessageChannelEnd | MessagePort,
  ) {
    (port as MessageChannelEnd).on('message', this.onMessage);
  }

  /** Stops answering the port (the engine is left as it is: its owner closes it). */
  detach(): void {
    (this.port as MessageChannelEnd).off('message', this.onMessage);
    for (const stream of this.streams.values()) stream.cancel();
    this.streams.clear();
  }

  /** Streams the HTTP thread still follows. */
  get openStreams(): number {
    return this.streams.size;
  }

  private post(message: HostMessage): void {
    this.port.postMessage(message);
  }

  private receive(message: LinkMessage): void {
    switch (message.kind) {
      case 'submit':
        this.submit(message.requestId, message.choices);
        return;
      case 'cancel':
        this.streams.get(message.streamId)?.cancel();
        return;
      case 'stats':
        this.post({ kind: 'stats', requestId: message.requestId, stats: this.engine.stats() });
        return;
    }
  }

  private submit(requestId: number, choices: Extract<LinkMessage, { kind: 'submit' }>['choices']): void {
    let streams: GenerationStream[];
    try {
      streams = submitChoices(this.engine, choices);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.post({ kind: 'refused', requestId, refusal: refusalOf(error), message });
      return;
    }
    // Posted before any of their tokens can be: those come from a later step, flushed after it.
    this.post({
      kind: 'submitted',
      requestId,
      streams: streams.map((stream) => ({ streamId: stream.id, promptTokens: stream.promptTokens })),
    });
    for (const stream of streams) this.follow(stream);
  }

  private follow(stream: GenerationStream): void {
    const id = stream.id;
    this.streams.set(id, stream);
    stream.listen({
      token: (event) => {
        this.records.push(id, event.tokenId, event.text, event.logprob ?? null, event.topLogprobs ?? null);
        this.queueFlush();
      },
      end: (result) => {
        this.streams.delete(id);
        const error = result.finishReason === 'error' ? (result.error?.message ?? 'unknown error') : null;
        this.records.push(endMarker(id), result.finishReason, error, null, null);
        this.queueFlush();
      },
    });
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    // The engine hands out a whole step's tokens before the microtasks run: one message carries them all.
    queueMicrotask(this.flush);
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.records.length === 0) return;
    const records = this.records;
    this.records = [];
    this.post({ kind: 'tokens', records });
  };
}
