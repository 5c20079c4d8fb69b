// Issue 15's GPU bar: 64 concurrent streaming clients through `andromeda serve`'s HTTP API against the
// same engine driven directly, in one process on one device (default: `andromeda-3b` with random
// weights in bfloat16 on cuda; or a checkpoint). The same workload both ways — 64 requests of a
// 128-byte prompt and `tokens` generated tokens each (ignore_eos, so every request generates exactly
// that many), sampled at temperature 0.8 with per-request seeds — measured as aggregate generated tokens
// per second from the first request to the last token. The HTTP clients run in a worker thread (their
// own event loop, as separate client processes would be), reading the server-sent events and checking
// each request's usage. The HTTP server runs in its own thread, as `andromeda serve` runs it ('own'), and,
// for comparison, in the engine's thread ('same'). Order: warm-up (captures the decode graphs), then
// `rounds` × (direct, HTTP per server thread); each ratio is HTTP over direct, best of each. Prints one RESULT
// line; the bar is the 'own' ratio ≥ 0.9. The workload and the client thread are ./serve-clients.ts;
// ./serve-overhead.ts measures the server's cost to the engine's thread per token on the CPU.
//
//   npx tsc -p tsconfig.json && node dist/bench/gpu-serve.js [--checkpoint DIR] [--device cuda]
//     [--clients 64] [--tokens 256] [--rounds 2] [--http-thread own,same]
import '../src/engine/index.js';
import { parseArgs } from 'node:util';
import { getEngine } from '../src/engine/registry.js';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import type { Tokenizer } from '../src/data/tokenizer/tokenizer.js';
import type { LanguageModel } from '../src/train/model.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { loadModelForInference } from '../src/inference/load.js';
import { InferenceEngine } from '../src/inference/engine.js';
import {
  PROMPT_BYTES,
  directRound,
  httpThreadsFlag,
  startBenchServers,
  type HttpThread,
  type RoundResult,
} from './serve-clients.js';

const { values } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    device: { type: 'string', default: 'cuda' },
    clients: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '2' },
    'http-thread': { type: 'string', default: 'own,same' },
  },
});
const threads = httpThreadsFlag(values['http-thread']!);
const device = values.device!;
const clients = Number(values.clients);
const tokens = Number(values.tokens);
const rounds = Number(values.rounds);
for (const [flag, value] of Object.entries({ clients, tokens, rounds }))
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`--${flag} must be a positive integer`);

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
const servers = await startBenchServers(threads, engine, tokenizer, {
  model: MODEL,
  clients,
  tokens,
  maxPromptTokens: 4096,
  contextLength: 8192,
});
const direct = (): Promise<RoundResult> => directRound(engine, clients, tokens);

console.error(
  `${label} on ${device}: ${clients} clients × ${tokens} tokens after ${PROMPT_BYTES}-byte prompts; ` +
    `HTTP server thread: ${threads.join(', ')}`,
);
await direct(); // warm-up: graphs captured, kernels loaded
/** The round and the engine steps it took: HTTP requests that arrive over several steps make the round longer. */
async function counted(round: () => Promise<RoundResult>): Promise<RoundResult & { steps: number }> {
  const before = engine.stats().steps;
  const result = await round();
  return { ...result, steps: engine.stats().steps - before };
}
const runs = new Map<string, { tokS: number[]; steps: number[] }>(
  ['direct', ...threads].map((k) => [k, { tokS: [], steps: [] }]),
);
for (let r = 0; r < rounds; r++) {
  const line: string[] = [];
  for (const kind of ['direct', ...threads]) {
    const result = await counted(kind === 'direct' ? direct : () => servers.get(kind as HttpThread)!.clients.round());
    runs.get(kind)!.tokS.push(result.tokS);
    runs.get(kind)!.steps.push(result.steps);
    const name = kind === 'direct' ? 'direct' : `HTTP (${kind} thread)`;
    line.push(`${name} ${result.tokS.toFixed(0)} tok/s (${result.steps} steps)`);
  }
  console.error(`round ${r + 1}: ${line.join(', ')}`);
}
const best = (kind: string): number => Math.max(...runs.get(kind)!.tokS);
const stats = engine.stats();
const description = device.startsWith('cuda') ? (getEngine('cuda') as { description?: string }).description : 'cpu';
const perThread = Object.fromEntries(
  threads.map((t) => [
    t,
    {
      http_tok_s: runs.get(t)!.tokS.map((x) => Math.round(x)),
      http_steps: runs.get(t)!.steps,
      ratio: +(best(t) / best('direct')).toFixed(3),
    },
  ]),
);
console.log(
  'RESULT ' +
    JSON.stringify({
      bench: 'gpu-serve',
      model: label,
      device: description,
      clients,
      tokens_per_request: tokens,
      prompt_bytes: PROMPT_BYTES,
      direct_tok_s: runs.get('direct')!.tokS.map((x) => Math.round(x)),
      direct_steps: runs.get('direct')!.steps,
      http_thread: perThread,
      bar: 0.9,
      paged: stats.paged,
      graphs: stats.graphs,
    }),
);
for (const server of servers.values()) await server.close();
await engine.close();
model.dispose();
