// The workload that bench/gpu-serve.ts and bench/serve-overhead.ts share: `clients` requests of a
// 128-byte prompt and `tokens` generated tokens each (ignore_eos, so every request generates exactly that
// many), sampled at temperature 0.8 with per-request seeds, run either on the engine directly or through
// `andromeda serve`'s streaming /v1/completions by clients in a worker thread (their own event loop, as
// separate client processes would be) that parse the server-sent events and check each request's usage.
import { Worker } from 'node:worker_threads';
import type { InferenceEngine } from '../src/inference/engine.js';
import { createServer } from '../src/serve/server.js';
import { inThreadEngine } from '../src/serve/served-engine.js';
import { startServer, type StartServerOptions } from '../src/serve/start-server.js';
import { loadChatTemplate } from '../src/serve/chat-template-file.js';
import type { Tokenizer } from '../src/data/tokenizer/tokenizer.js';

export const PROMPT_BYTES = 128;

export function promptOf(i: number): string {
  const words = ['river', 'stone', 'market', 'winter', 'harbour', 'lantern', 'orchard', 'bridge'];
  let text = `Request ${i}:`;
  for (let w = 0; text.length < PROMPT_BYTES; w++) text += ` ${words[(i * 7 + w * 3) % words.length]}`;
  return text.slice(0, PROMPT_BYTES);
}

export interface RoundResult {
  tokS: number;
  generated: number;
}

/** The engine directly: every request submitted at once, all streams drained. Aggregate tokens/s. */
export async function directRound(engine: InferenceEngine, clients: number, tokens: number): Promise<RoundResult> {
  const started = performance.now();
  const streams = Array.from({ length: clients }, (_, i) =>
    engine.submit(promptOf(i), { maxTokens: tokens, ignoreEos: true, temperature: 0.8, seed: i }),
  );
  const counts = await Promise.all(
    streams.map(async (stream) => {
      let n = 0;
      for await (const event of stream) if (event.tokenId >= 0) n++;
      return n;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const generated = counts.reduce((a, b) => a + b, 0);
  if (generated !== clients * tokens)
    throw new Error(`the engine generated ${generated} tokens, not ${clients * tokens}`);
  return { tokS: generated / seconds, generated };
}

const CLIENT_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, model, clients, tokens, prompts } = workerData;
async function one(i) {
  const response = await fetch(url + '/v1/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: prompts[i], max_tokens: tokens, ignore_eos: true, temperature: 0.8,
      seed: i, stream: true, stream_options: { include_usage: true } }),
  });
  if (response.status !== 200) throw new Error('status ' + response.status + ': ' + (await response.text()));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '', usage = null, done = false;
  for (;;) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\\n\\n')) >= 0) {
      const data = buffer.slice(6, end);
      buffer = buffer.slice(end + 2);
      if (data === '[DONE]') { done = true; continue; }
      const chunk = JSON.parse(data);
      if (chunk.usage) usage = chunk.usage;
    }
  }
  if (!done || !usage) throw new Error('stream ended without usage and [DONE]');
  return usage.completion_tokens;
}
parentPort.on('message', async () => {
  const started = performance.now();
  try {
    const counts = await Promise.all(Array.from({ length: clients }, (_, i) => one(i)));
    parentPort.postMessage({ seconds: (performance.now() - started) / 1000, counts });
  } catch (error) {
    parentPort.postMessage({ error: String(error) });
  }
});
`;

/** The HTTP clients in their worker thread; each `round` runs all of them at once. */
export class StreamingClients {
  private readonly worker: Worker;

  constructor(
    url: string,
    model: string,
    private readonly clients: number,
    private readonly tokens: number,
  ) {
    this.worker = new Worker(CLIENT_SOURCE, {
      eval: true,
      workerData: { url, model, clients, tokens, prompts: Array.from({ length: clients }, (_, i) => promptOf(i)) },
    });
  }

  /** Every client streams one request. Aggregate tokens/s from the usage each one received. */
  round(): Promise<RoundResult> {
    return new Promise((resolve, reject) => {
      this.worker.once('message', (m: { seconds: number; counts: number[]; error?: string }) => {
        if (m.error) return reject(new Error(m.error));
        const generated = m.counts.reduce((a, b) => a + b, 0);
        if (m.counts.some((c) => c !== this.tokens))
          return reject(new Error(`usage counts ${m.counts} are not all ${this.tokens}`));
        resolve({ tokS: generated / m.seconds, generated });
      });
      this.worker.postMessage('go');
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * Where the benchmarks run the HTTP server: in its own thread, as `andromeda serve` does ('own'), or in
 * the engine's thread ('same'), to see what the thread of its own saves the engine.
 */
export type HttpThread = 'own' | 'same';

/** A server in one of the threads, with its clients' thread. */
export interface BenchServer {
  thread: HttpThread;
  clients: StreamingClients;
  close(): Promise<void>;
}

/**
 * One server per thread kind over `engine` (each on its own port; its model name `model`, prompts up to
 * `contextLength`), each with `clients` streaming clients of `tokens` tokens.
 */
export async function startBenchServers(
  threads: readonly HttpThread[],
  engine: InferenceEngine,
  tokenizer: Tokenizer,
  shape: { model: string; clients: number; tokens: number; maxPromptTokens: number; contextLength: number },
): Promise<Map<HttpThread, BenchServer>> {
  const servers = new Map<HttpThread, BenchServer>();
  for (const thread of threads) {
    const options: StartServerOptions = {
      engine,
      tokenizer,
      chatTemplate: loadChatTemplate([], tokenizer),
      modelId: shape.model,
      limits: {
        maxPromptTokens: shape.maxPromptTokens,
        maxTokens: shape.tokens,
        contextLength: shape.contextLength,
        queueLimit: 4 * shape.clients,
      },
      apiKey: null,
      bodyLimit: 1 << 20,
      host: '127.0.0.1',
      port: 0,
    };
    let url: string;
    let close: () => Promise<void>;
    if (thread === 'own') ({ url, close } = await startServer(options));
    else {
      const { engine: _engine, host, port, ...settings } = options;
      const app = await createServer({ ...settings, engine: inThreadEngine(engine) });
      url = await app.listen({ host, port });
      close = () => app.close();
    }
    const clients = new StreamingClients(url, shape.model, shape.clients, shape.tokens);
    servers.set(thread, {
      thread,
      clients,
      async close() {
        await clients.close();
        await close();
      },
    });
  }
  return servers;
}

/** The --http-thread flag: 'own', 'same' or both ('own,same'). */
export function httpThreadsFlag(value: string): HttpThread[] {
  const threads = value.split(',').map((t) => t.trim());
  for (const t of threads)
    if (t !== 'own' && t !== 'same') throw new RangeError(`--http-thread takes own, same or own,same; got ${value}`);
  return [...new Set(threads)] as HttpThread[];
}
