// Issue 15's GPU bar: 64 concurrent streaming clients through `andromeda serve`'s HTTP API against the
// same engine driven directly, in one process on one device (default: `andromeda-3b` with random
// weights in bfloat16 on cuda; or a checkpoint). The same workload both ways — 64 requests of a
// 128-byte prompt and `tokens` generated tokens each (ignore_eos, so every request generates exactly
// that many), sampled at temperature 0.8 with per-request seeds — measured as aggregate generated tokens
// per second from the first request to the last token. The HTTP clients run in a worker thread (their
// own event loop, as separate client processes would be), reading the server-sent events and checking
// each request's usage. Order: warm-up (captures the decode graphs), direct, HTTP, direct, HTTP; the
// ratio is HTTP over direct, best of each. Prints one RESULT line; the bar is ratio ≥ 0.9.
//
//   npx tsc -p tsconfig.json && node dist/bench/gpu-serve.js [--checkpoint DIR] [--device cuda]
//     [--clients 64] [--tokens 256]
import '../src/engine/index.js';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { getEngine } from '../src/engine/registry.js';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import type { Tokenizer } from '../src/data/tokenizer/tokenizer.js';
import type { LanguageModel } from '../src/train/model.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { loadModelForInference } from '../src/inference/load.js';
import { InferenceEngine } from '../src/inference/engine.js';
import { createServer } from '../src/serve/server.js';
import { loadChatTemplate } from '../src/serve/chat-template.js';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    device: { type: 'string', default: 'cuda' },
    clients: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '256' },
  },
});
const device = values.device!;
const clients = Number(values.clients);
const tokens = Number(values.tokens);
const PROMPT_BYTES = 128;

let model: LanguageModel;
let tokenizer: Tokenizer;
let label: string;
if (values.checkpoint) {
  const loaded = await loadModelForInference(values.checkpoint, device);
  model = loaded.model;
  tokenizer = loaded.tokenizer;
  label = values.checkpoint;
} else {
  // The 3B architecture with random weights: throughput does not depend on what the weights say. The byte
  // tokenizer fits inside its vocabulary; sampling draws among the tokenizer's ids.
  tokenizer = new ByteTokenizer();
  model = andromedaFamily.create(andromedaFamily.presetConfig('andromeda-3b', 50432, {}), { seed: 0, device });
  label = 'andromeda-3b (random weights)';
}
if (device.startsWith('cuda')) (model as unknown as { to(d: string): void }).to('bfloat16');

const engine = new InferenceEngine(model, tokenizer, {
  maxBatch: clients,
  tokenBudget: Math.max(2048, clients),
  maxQueue: 4 * clients,
  memoryBytes: 8 * 2 ** 30,
});
const MODEL = 'bench';
const app = await createServer({
  engine,
  tokenizer,
  chatTemplate: loadChatTemplate([], tokenizer),
  modelId: MODEL,
  limits: { maxPromptTokens: 4096, maxTokens: tokens, contextLength: 8192, queueLimit: 4 * clients },
  apiKey: null,
  bodyLimit: 1 << 20,
});
const url = await app.listen({ host: '127.0.0.1', port: 0 });

function promptOf(i: number): string {
  const words = ['river', 'stone', 'market', 'winter', 'harbour', 'lantern', 'orchard', 'bridge'];
  let text = `Request ${i}:`;
  for (let w = 0; text.length < PROMPT_BYTES; w++) text += ` ${words[(i * 7 + w * 3) % words.length]}`;
  return text.slice(0, PROMPT_BYTES);
}

/** The engine directly: every request submitted at once, all streams drained. Aggregate tokens/s. */
async function direct(): Promise<{ tokS: number; generated: number }> {
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
const worker = new Worker(CLIENT_SOURCE, {
  eval: true,
  workerData: { url, model: MODEL, clients, tokens, prompts: Array.from({ length: clients }, (_, i) => promptOf(i)) },
});

/** The same workload through HTTP: the worker's clients all at once. Aggregate tokens/s from usage. */
function http(): Promise<{ tokS: number; generated: number }> {
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { seconds: number; counts: number[]; error?: string }) => {
      if (m.error) return reject(new Error(m.error));
      const generated = m.counts.reduce((a, b) => a + b, 0);
      if (m.counts.some((c) => c !== tokens)) reject(new Error(`usage counts ${m.counts} are not all ${tokens}`));
      resolve({ tokS: generated / m.seconds, generated });
    });
    worker.postMessage('go');
  });
}

console.error(`${label} on ${device}: ${clients} clients × ${tokens} tokens after ${PROMPT_BYTES}-byte prompts`);
await direct(); // warm-up: graphs captured, kernels loaded
const runs = { direct: [] as number[], http: [] as number[] };
for (let r = 0; r < 2; r++) {
  const d = await direct();
  runs.direct.push(d.tokS);
  const h = await http();
  runs.http.push(h.tokS);
  console.error(`round ${r + 1}: direct ${d.tokS.toFixed(0)} tok/s, HTTP ${h.tokS.toFixed(0)} tok/s`);
}
const bestDirect = Math.max(...runs.direct);
const bestHttp = Math.max(...runs.http);
const stats = engine.stats();
const description = device.startsWith('cuda') ? (getEngine('cuda') as { description?: string }).description : 'cpu';
console.log(
  'RESULT ' +
    JSON.stringify({
      bench: 'gpu-serve',
      model: label,
      device: description,
      clients,
      tokens_per_request: tokens,
      prompt_bytes: PROMPT_BYTES,
      direct_tok_s: runs.direct.map((x) => Math.round(x)),
      http_tok_s: runs.http.map((x) => Math.round(x)),
      ratio: +(bestHttp / bestDirect).toFixed(3),
      bar: 0.9,
      paged: stats.paged,
      graphs: stats.graphs,
    }),
);
await worker.terminate();
await app.close();
await engine.close();
model.dispose();
