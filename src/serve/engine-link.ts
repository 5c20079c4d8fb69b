/**
 * The engine as the HTTP thread reaches it: a ServedEngine over the port to the main thread's engine
 * host (./engine-host.ts). Each stream the engine runs has a replica here, a GenerationStream fed from
 * the host's step messages, so the server follows it exactly as it would the engine's own; cancelling a
 * replica (or aborting its request's signal) cancels the engine's stream.
 */
import type { EngineStats, GenerationParams, TokenEvent } from '../inference/engine.js';
import { GenerationStream } from '../inference/generation-stream.js';
import type { FinishReason } from '../inference/sequence.js';
import { QueueFullError, type ChoiceRequest, type ServedEngine } from './served-engine.js';
import {
  RECORD_FIELDS,
  streamOfEndMarker,
  type HostMessage,
  type LinkMessage,
  type RefusalKind,
  type TokenRecords,
} from './engine-messages.js';
import type { MessageChannelEnd } from './engine-host.js';

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
}

/** The error the engine refused a request with, rebuilt on this side of the port. */
function refusalError(refusal: RefusalKind, message: string): Error {
  if (refusal === 'queue-full') {
    const error = new QueueFullError(0);
    error.message = message;
    return error;
  }
  return refusal === 'range' ? new RangeError(message) : new Error(message);
}

export class EngineLink implements ServedEngine {
  private readonly streams = new Map<number, GenerationStream>();
  private readonly submits = new Map<number, Pending<Extract<HostMessage, { kind: 'submitted' }>['streams']>>();
  private readonly statsRequests = new Map<number, Pending<EngineStats>>();
  private nextRequestId = 0;
  private closedWith: Error | null = null;

  constructor(private readonly port: MessageChannelEnd) {
    port.on('message', (message) => this.receive(message as HostMessage));
  }

  async submitAll(choices: readonly ChoiceRequest[]): Promise<GenerationStream[]> {
    const requestId = this.nextRequestId++;
    const accepted = this.request(this.submits, requestId, {
      kind: 'submit',
      requestId,
      choices: choices.map(({ context, params }) => {
        const { signal: _signal, ...cloneable } = params;
        return { context, params: cloneable as Omit<GenerationParams, 'signal'> };
      }),
    });
    const streams = (await accepted).map(({ streamId, promptTokens }, i) => {
      const stream = new GenerationStream(streamId, promptTokens, () => this.send({ kind: 'cancel', streamId }));
      this.streams.set(streamId, stream);
      const signal = choices[i]!.params.signal;
      if (signal) {
        if (signal.aborted) stream.cancel();
        else signal.addEventListener('abort', () => stream.cancel(), { once: true });
      }
      return stream;
    });
    return streams;
  }

  stats(): Promise<EngineStats> {
    const requestId = this.nextRequestId++;
    return this.request(this.statsRequests, requestId, { kind: 'stats', requestId });
  }

  /**
   * The engine is gone (its thread is shutting down or failed): pending requests reject with `error` and
   * every stream still running ends as 'error'.
   */
  fail(error: Error): void {
    this.closedWith ??= error;
    for (const pending of [...this.submits.values(), ...this.statsRequests.values()]) pending.reject(error);
    this.submits.clear();
    this.statsRequests.clear();
    for (const stream of this.streams.values()) stream.sink.finish('error', error);
    this.streams.clear();
  }

  private request<T>(pending: Map<number, Pending<T>>, requestId: number, message: LinkMessage): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise<T>((resolve, reject) => {
      pending.set(requestId, { resolve, reject });
      this.send(message);
    });
  }

  private send(message: LinkMessage): void {
    if (!this.closedWith) this.port.postMessage(message);
  }

  private receive(message: HostMessage): void {
    switch (message.kind) {
      case 'tokens':
        this.deliver(message.records);
        return;
      case 'submitted':
        this.settle(this.submits, message.requestId)?.resolve(message.streams);
        return;
      case 'refused':
        this.settle(this.submits, message.requestId)?.reject(refusalError(message.refusal, message.message));
        return;
      case 'stats':
        this.settle(this.statsRequests, message.requestId)?.resolve(message.stats);
        return;
    }
  }

  private settle<T>(pending: Map<number, Pending<T>>, requestId: number): Pending<T> | undefined {
    const entry = pending.get(requestId);
    pending.delete(requestId);
    return entry;
  }

  /** A step's tokens and ends, handed to the replicas in the engine's order. */
  private deliver(records: TokenRecords): void {
    for (let i = 0; i < records.length; i += RECORD_FIELDS) {
      const head = records[i] as number;
      if (head >= 0) {
        const event: TokenEvent = { tokenId: records[i + 1] as number, text: records[i + 2] as string };
        const logprob = records[i + 3] as number | null;
        const top = records[i + 4] as TokenEvent['topLogprobs'] | null;
        if (logprob !== null) event.logprob = logprob;
        if (top !== null) event.topLogprobs = top;
        this.streams.get(head)?.sink.token(event);
      } else {
        const id = streamOfEndMarker(head);
        const stream = this.streams.get(id);
        this.streams.delete(id);
        const message = records[i + 2] as string | null;
        stream?.sink.finish(records[i + 1] as FinishReason, message === null ? undefined : new Error(message));
      }
    }
  }
}
