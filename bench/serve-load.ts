// Load and abuse benchmark of `andromeda serve` on the CPU with a tiny model (issue 15's CPU bar):
//   1. 256 concurrent streaming clients (half chat, half completions), each checking its usage counts
//      against what it was streamed and what its prompt is;
//   2. 64 of them disconnect mid-stream: afterwards /metrics must show no running sequence and no KV
//      block in use;
//   3. 1,000 malformed or hostile requests (bad JSON, huge bodies, wrong types, bad numbers, 1 MB stop
//      strings, unknown fields, slow-loris uploads, ...) must all get a 4xx, and the server stays up;
//   4. the server's memory (V8 heaps of the engine's and the HTTP thread after a full GC, and RSS) must
//      return to its baseline.
// Reports p50/p99 time to first token and inter-token latency as the clients see them. Exits 1 when a
// check fails.
//
//   npx tsc -p tsconfig.json && node --expose-gc dist/bench/serve-load.js [--run DIR] [--clients 256]
//     [--disconnects 64] [--hostile 1000] [--max-tokens 32] [--max-concurrent 256] [--rounds 2]
//
// Without --run it trains the tests' tiny model (tests/serve/helpers.ts) first. The server runs in this
// process, its HTTP server in its own thread as `andromeda serve` runs it (so that a full GC can be forced in
// both threads before each memory reading); the clients are plain fetch streams parsed by hand.
import '../src/engine/index.js';
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { loadModelForInference } from '../src/inference/load.js';
import { InferenceEngine } from '../src/inference/engine.js';
import { startServer } from '../src/serve/start-server.js';
import { loadChatTemplate, templateSearchDirs } from '../src/serve/chat-template-file.js';
import { trainedRun } from '../tests/serve/helpers.js';
import { hostileRequests } from '../tests/serve/hostile-requests.js';

const { values } = parseArgs({
  options: {
    run: { type: 'string' },
    clients: { type: 'string', default: '256' },
    disconnects: { type: 'string', default: '64' },
    hostile: { type: 'string', default: '1000' },
    'max-tokens': { type: 'string', default: '32' },
    'max-concurrent': { type: 'string', default: '256' },
    rounds: { type: 'string', default: '2' },
  },
});
const clients = Number(values.clients);
const disconnects = Number(values.disconnects);
const hostileCount = Number(values.hostile);
const maxTokens = Number(values['max-tokens']);
const maxConcurrent = Number(values['max-concurrent']);
const rounds = Number(values.rounds);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc, so memory is compared after full collections');

const failures: string[] = [];
function check(ok: boolean, what: string): void {
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${what}`);
  if (!ok) failures.push(what);
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Both threads' V8 heaps in use after full collections, and the process's resident memory. */
async function settledMemory(): Promise<{ heap: number; rss: number }> {
  let serverHeap = 0;
  for (let i = 0; i < 4; i++) {
    gc!();
    serverHeap = await server.heapUsed({ collect: true });
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed + serverHeap, rss: m.rss };
}

/** Past the server's keep-alive timeout (5 s), so idle connections from the last round are closed on both ends. */
const idle = (): Promise<void> => new Promise((r) => setTimeout(r, 6000));

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

const run = values.run ?? (await trainedRun());
const loaded = await loadModelForInference(run, 'cpu');
const contextLength = loaded.config.maxSeqLen as number;
const template = loadChatTemplate(templateSearchDirs(loaded.dir), loaded.tokenizer);
const engine = new InferenceEngine(loaded.model, loaded.tokenizer, {
  maxBatch: maxConcurrent,
  tokenBudget: Math.max(512, maxConcurrent),
  maxQueue: 1024,
  numBlocks: 4096,
  blockSize: 16,
});
const MODEL = 'bench-tiny';
const server = await startServer({
  engine,
  tokenizer: loaded.tokenizer,
  chatTemplate: template,
  modelId: MODEL,
  limits: { maxPromptTokens: contextLength, maxTokens: 64, contextLength, queueLimit: 1024 },
  apiKey: null,
  bodyLimit: 1 << 20,
  requestTimeoutMs: 5000,
  host: '127.0.0.1',
  port: 0,
});
const url = server.url;
console.log(`# andromeda serve load benchmark`);
console.log(
  `date ${new Date().toISOString()}, node ${process.version}, ${cpus().length} cores, load ${loadavg()[0]!.toFixed(2)}`,
);
const runner = engine.stats().paged ? 'paged' : 'recompute';
console.log(
  `model ${run} (dim ${loaded.config.dim}, depth ${loaded.config.depth}, context ${contextLength}); ` +
    `engine: max-concurrent ${maxConcurrent}, ${runner} runner`,
);
console.log(
  `clients ${clients} (of which ${disconnects} disconnect mid-stream), max_tokens ${maxTokens}, ` +
    `hostile ${hostileCount}`,
);

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

interface StreamOutcome {
  ok: boolean;
  problem?: string;
  ttftMs: number | null;
  gapsMs: number[];
  disconnected: boolean;
}

const PROMPTS = ['the white whale', 'the captain sails', 'the deep sea', 'into the wind', 'the ship'];

/** One streaming client; `dropAfter` = number of token chunks after which it disconnects (null: never). */
async function streamingClient(i: number, dropAfter: number | null): Promise<StreamOutcome> {
  const chat = i % 2 === 0;
  const prompt = `${PROMPTS[i % PROMPTS.length]} ${i}`;
  const body = chat
    ? {
        model: MODEL,
        messages: [{ role: 'user', content: prompt }],
        max_tokens: maxTokens,
        stream: true,
        stream_options: { include_usage: true },
        logprobs: true,
        ignore_eos: true,
        temperature: 0.8,
        seed: i,
      }
    : {
        model: MODEL,
        prompt,
        max_tokens: maxTokens,
        stream: true,
        stream_options: { include_usage: true },
        logprobs: 0,
        ignore_eos: true,
        temperature: 0.8,
        seed: i,
      };
  const expectedPrompt = chat
    ? template.encode(body.messages as never).length
    : loaded.tokenizer.encode(prompt).length + 1;
  const controller = new AbortController();
  const started = performance.now();
  const outcome: StreamOutcome = { ok: false, ttftMs: null, gapsMs: [], disconnected: false };
  let streamedTokens = 0;
  let usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null = null;
  let finish: string | null = null;
  let done = false;
  try {
    const response = await fetch(`${url}/v1/${chat ? 'chat/completions' : 'completions'}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (response.status !== 200) return { ...outcome, problem: `status ${response.status}: ${await response.text()}` };
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let last: number | null = null;
    let chunks = 0;
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.slice('data: '.length);
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        const chunk = JSON.parse(data);
        if (chunk.usage) usage = chunk.usage;
        for (const choice of chunk.choices) {
          const tokens = chat ? (choice.logprobs?.content?.length ?? 0) : (choice.logprobs?.tokens?.length ?? 0);
          if (tokens > 0) {
            const now = performance.now();
            if (last === null) outcome.ttftMs = now - started;
            else outcome.gapsMs.push(now - last);
            last = now;
            streamedTokens += tokens;
            chunks++;
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        if (dropAfter !== null && chunks >= dropAfter) {
          controller.abort();
          return { ...outcome, ok: true, disconnected: true };
        }
      }
    }
  } catch (error) {
    return { ...outcome, problem: `stream failed: ${(error as Error).message}` };
  }
  if (!done) return { ...outcome, problem: 'no [DONE]' };
  if (!usage) return { ...outcome, problem: 'no usage chunk' };
  const problems: string[] = [];
  if (usage.prompt_tokens !== expectedPrompt) problems.push(`prompt_tokens ${usage.prompt_tokens} ≠ ${expectedPrompt}`);
  if (usage.completion_tokens !== streamedTokens)
    problems.push(`completion_tokens ${usage.completion_tokens} ≠ ${streamedTokens} streamed`);
  if (finish === 'length' && usage.completion_tokens !== maxTokens)
    problems.push(`finish length after ${usage.completion_tokens} tokens, not ${maxTokens}`);
  if (usage.total_tokens !== usage.prompt_tokens + usage.completion_tokens) problems.push('total_tokens ≠ sum');
  return problems.length ? { ...outcome, problem: problems.join('; ') } : { ...outcome, ok: true };
}

interface RoundResult {
  outcomes: StreamOutcome[];
  loadSeconds: number;
  statuses: Map<string, Map<number, number>>;
  hostileSeconds: number;
}

/** The streaming load (every (count / drops)-th client disconnecting after a few tokens), then the hostile requests. */
async function round(count: number, drops: number, hostileTotal: number, seed: number): Promise<RoundResult> {
  const every = drops > 0 ? Math.floor(count / drops) : Infinity;
  const loadStarted = performance.now();
  const outcomes = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      streamingClient(i, i % every === every - 1 && Math.floor(i / every) < drops ? 2 + (i % 5) : null),
    ),
  );
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  // 64 at a time, eight of them slow-loris uploads.
  const hostile = hostileRequests(url, MODEL, hostileTotal, seed, Math.min(8, hostileTotal));
  const statuses = new Map<string, Map<number, number>>();
  let next = 0;
  const hostileStarted = performance.now();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < hostile.length) {
        const request = hostile[next++]!;
        const { status } = await request.send();
        const byStatus = statuses.get(request.kind) ?? new Map<number, number>();
        byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
        statuses.set(request.kind, byStatus);
      }
    }),
  );
  return { outcomes, loadSeconds, statuses, hostileSeconds: (performance.now() - hostileStarted) / 1000 };
}

// A smaller round first, so that the baseline is taken after every code path has run once (compiled
// code, connection pools and caches that a first use creates are not growth).
await round(32, 8, 100, 3);
await idle();
const baseline = await settledMemory();
console.log(`baseline (after a warm-up round): heap ${mib(baseline.heap)}, rss ${mib(baseline.rss)}`);

const { outcomes, loadSeconds, statuses, hostileSeconds } = await round(clients, disconnects, hostileCount, 15);
const completed = outcomes.filter((o) => o.ok && !o.disconnected);
const dropped = outcomes.filter((o) => o.disconnected);
const broken = outcomes.filter((o) => !o.ok);
for (const o of broken.slice(0, 5)) console.log(`  client problem: ${o.problem}`);
check(
  completed.length === clients - disconnects && broken.length === 0,
  `${completed.length}/${clients - disconnects} streaming clients completed with correct usage counts ` +
    `(${broken.length} problems)`,
);
check(dropped.length === disconnects, `${dropped.length}/${disconnects} clients disconnected mid-stream`);
let freed = false;
for (let t = 0; t < 100 && !freed; t++) {
  freed = (await metric('andromeda_kv_blocks_used')) === 0 && (await metric('andromeda_sequences_running')) === 0;
  if (!freed) await new Promise((r) => setTimeout(r, 50));
}
check(freed, `after the load and the abuse: andromeda_kv_blocks_used 0 and andromeda_sequences_running 0`);
const ttft = outcomes.flatMap((o) => (o.ttftMs === null ? [] : [o.ttftMs]));
const gaps = outcomes.flatMap((o) => o.gapsMs);
console.log(
  `load: ${loadSeconds.toFixed(2)} s; time to first token p50 ${percentile(ttft, 50).toFixed(1)} ms, ` +
    `p99 ${percentile(ttft, 99).toFixed(1)} ms; inter-token latency p50 ${percentile(gaps, 50).toFixed(1)} ms, ` +
    `p99 ${percentile(gaps, 99).toFixed(1)} ms (${gaps.length} gaps)`,
);
let fourxx = 0;
for (const [kind, byStatus] of [...statuses].sort((a, b) => a[0].localeCompare(b[0]))) {
  const line = [...byStatus].map(([s, n]) => `${s}×${n}`).join(' ');
  console.log(`  ${kind}: ${line}`);
  for (const [s, n] of byStatus) if (s >= 400 && s < 500) fourxx += n;
}
check(fourxx === hostileCount, `${fourxx}/${hostileCount} hostile requests got a 4xx (${hostileSeconds.toFixed(1)} s)`);
const health = await fetch(`${url}/health`);
const after = await streamingClient(1, null);
check(health.status === 200 && after.ok, `the server is up afterwards: /health ${health.status}, a stream completes`);

// 4: memory back to the baseline.
await idle();
const final = await settledMemory();
const heapGrowth = final.heap - baseline.heap;
console.log(
  `memory after: heap ${mib(final.heap)} (${heapGrowth >= 0 ? '+' : ''}${mib(heapGrowth)}), rss ${mib(final.rss)} ` +
    `(${final.rss >= baseline.rss ? '+' : ''}${mib(final.rss - baseline.rss)})`,
);
check(
  heapGrowth < Math.max(2 * 2 ** 20, 0.1 * baseline.heap),
  'the heap is back to its baseline (within 10% or 2 MiB)',
);

// Further identical rounds (--rounds, default 2 in all): whatever the first left (bounded caches such as
// the prefix-block hashes of new prompts, optimised code) must not keep growing, or something is kept per
// request.
let previous = final;
let steady = true;
for (let r = 2; r <= rounds; r++) {
  const again = await round(clients, disconnects, hostileCount, 14 + r);
  const allOk = again.outcomes.every((o) => o.ok);
  await idle();
  const now = await settledMemory();
  const growth = now.heap - previous.heap;
  console.log(
    `memory after round ${r} (${allOk ? 'all clients ok' : 'client problems'}): heap ${mib(now.heap)} ` +
      `(${growth >= 0 ? '+' : ''}${mib(growth)} over round ${r - 1}), rss ${mib(now.rss)}`,
  );
  steady &&= allOk && growth < 2 ** 20;
  previous = now;
}
if (rounds > 1) check(steady, `each further round leaves the heap within 1 MiB of the round before`);

await server.close();
await engine.close();
loaded.model.dispose();
console.log(failures.length === 0 ? 'all checks passed' : `${failures.length} checks failed`);
process.exitCode = failures.length === 0 ? 0 : 1;
