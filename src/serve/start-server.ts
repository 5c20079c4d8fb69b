/**
 * Starts `andromeda serve`'s HTTP server in a thread of its own (./http-thread.ts) over an engine that
 * stays in this thread, joined by a message port (./engine-host.ts here, ./engine-link.ts there).
 *
 * Why a thread: every streamed token costs the server a chunk, its JSON and a socket write per client
 * per step. In the engine's thread those run between the engine's steps, and at 64 clients they are
 * about a sixth of a GPU step; in their own thread they run during the next step, and the engine's
 * thread pays one record of one message per token. The server also stays responsive (/health,
 * /metrics, refusals) while the engine's thread is busy with a long prefill.
 */
import { Worker, MessageChannel } from 'node:worker_threads';
import type { InferenceEngine } from '../inference/engine.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { ChatTemplateSource } from './chat-template.js';
import type { ServerOptions } from './server.js';
import { EngineHost } from './engine-host.js';

export interface StartServerOptions extends Omit<ServerOptions, 'engine'> {
  /** The engine, which stays in this thread (the tokenizer and chat template are rebuilt in the HTTP thread). */
  engine: InferenceEngine;
  host: string;
  /** 0 = any free port. */
  port: number;
}

/** What the HTTP thread is given (structured-cloneable). */
export interface HttpThreadData extends Omit<StartServerOptions, 'engine' | 'tokenizer' | 'chatTemplate'> {
  tokenizer: { json: unknown; eosToken: string | undefined; eosId: number; vocabSize: number };
  chatTemplate: ChatTemplateSource;
}

/** HTTP thread → this thread, on the control port (the worker's own). */
export type HttpThreadReport =
  { kind: 'listening'; url: string } | { kind: 'failed'; message: string } | { kind: 'memory'; heapUsed: number };

/** This thread → HTTP thread, on the control port. */
export type HttpThreadCommand = { kind: 'close' } | { kind: 'memory'; collect: boolean };

export interface RunningServer {
  /** The address it listens on, e.g. http://127.0.0.1:8000. */
  url: string;
  /** Stops accepting requests, ends those in flight, and waits for the HTTP thread to end. Idempotent. */
  close(): Promise<void>;
  /** Resolves when the HTTP thread has ended after `close`; rejects if it ended by failing. */
  readonly ended: Promise<void>;
  /**
   * Bytes of the HTTP thread's JavaScript heap in use (it is not in this thread's `process.memoryUsage()`);
   * with `collect`, after a full garbage collection when Node runs with --expose-gc. For benchmarks' memory checks.
   */
  heapUsed(options?: { collect?: boolean }): Promise<number>;
}

/** The text of the tokenizer's end-of-document token, so the rebuilt tokenizer picks the same one. */
function eosTokenText(tokenizer: Tokenizer): string | undefined {
  for (const [text, id] of tokenizer.specialTokens) if (id === tokenizer.eosId) return text;
  return undefined;
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { engine, tokenizer, chatTemplate, ...settings } = options;
  const data: HttpThreadData = {
    tokenizer: {
      json: tokenizer.toJSON(),
      eosToken: eosTokenText(tokenizer),
      eosId: tokenizer.eosId,
      vocabSize: tokenizer.vocabSize,
    },
    chatTemplate: chatTemplate.source,
    ...settings,
  };
  const { port1: enginePort, port2: linkPort } = new MessageChannel();
  const worker = new Worker(new URL('./http-thread.js', import.meta.url), {
    workerData: { data, enginePort: linkPort },
    transferList: [linkPort],
  });
  const host = new EngineHost(engine, enginePort);
  let closing = false;
  let exited = false;
  const ended = new Promise<void>((resolve, reject) => {
    let failure: Error | null = null;
    worker.once('error', (error) => (failure = error));
    worker.once('exit', (code) => {
      exited = true;
      host.detach();
      enginePort.close();
      if (failure) reject(failure);
      else if (code !== 0 || !closing)
        reject(new Error(`the HTTP server's thread ended unexpectedly (exit code ${code})`));
      else resolve();
    });
  });
  // Whoever starts the server waits on `ended` only once it is running; until then a failure rejects `url`.
  ended.catch(() => undefined);
  const heapReadings: ((bytes: number) => void)[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    worker.on('message', (report: HttpThreadReport) => {
      if (report.kind === 'listening') resolve(report.url);
      else if (report.kind === 'memory') heapReadings.shift()?.(report.heapUsed);
      else reject(new Error(report.message));
    });
    ended.then(
      () => reject(new Error('the HTTP server ended before it listened')),
      (error: Error) => reject(error),
    );
  });
  return {
    url,
    ended,
    heapUsed({ collect = false } = {}) {
      if (exited) return Promise.reject(new Error("the HTTP server's thread has ended"));
      return new Promise<number>((resolve) => {
        heapReadings.push(resolve);
        worker.postMessage({ kind: 'memory', collect } satisfies HttpThreadCommand);
      });
    },
    async close() {
      if (!closing) {
        closing = true;
        worker.postMessage({ kind: 'close' } satisfies HttpThreadCommand);
      }
      await ended;
    },
  };
}
