// The server's own cost per streamed token, on the CPU: a proxy for issue 15's GPU bar
// (./gpu-serve.ts), where one GPU step takes ~5.2 ms for 64 sequences and everything the server adds to
// the engine's thread per step (one server-sent event per token of each client) comes out of the 10%
// that 64 HTTP clients may lose against the engine driven directly.
//
// The same workload as gpu-serve (./serve-clients.ts: 64 clients in a worker thread streaming
// /v1/completions, usage checked; the same requests submitted to the engine directly), over a model
// whose step is as cheap as it gets (an Andromeda of dim 32, depth 1, random weights, byte vocabulary),
// so that the server's share of the engine thread's time is large enough to measure. The machine may be
// shared, so the figures are the engine thread's CPU time (Linux: /proc/self/task/<pid>/sched, ns), not
// wall time: per token, HTTP round minus direct round is what serving adds. On a shared machine the
// model's forward and sampling vary by more than the server costs, so their CPU time is also measured
// apart (the bench wraps the engine's step runner) and the headline is the rest of the thread's time
// — scheduling, token delivery, and the server — per token, HTTP minus direct. Order: warm-up (direct,
// HTTP), then `rounds` × (direct, HTTP); medians and the lowest of each are reported.
//
//   npx tsc -p tsconfig.json && node dist/bench/serve-overhead.js [--clients 64] [--tokens 256]
//     [--rounds 5] [--profile FILE.cpuprofile]
//
// --profile records the engine thread during one more HTTP round with V8's sampling profiler, writes it
// (open it in Chrome DevTools) and prints the functions with the most self time.
import '../src/engine/index.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { InferenceEngine } from '../src/inference/engine.js';
import { createServer } from '../src/serve/server.js';
import { loadChatTemplate } from '../src/serve/chat-template.js';
import { PROMPT_BYTES, StreamingClients, directRound, type RoundResult } from './serve-clients.js';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '5' },
    profile: { type: 'string' },
  },
});
function positiveInteger(flag: string): number {
  const value = Number(values[flag as keyof typeof values]);
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`--${flag} must be a positive integer, got ${values[flag as keyof typeof values]}`);
  return value;
}
const clients = positiveInteger('clients');
const tokens = positiveInteger('tokens');
const rounds = positiveInteger('rounds');
const CONTEXT = PROMPT_BYTES + tokens + 1;

/**
 * CPU seconds the engine's thread (the main thread: its id is the process id) has run: the scheduler's
 * nanosecond sum where the kernel exposes it, else the clock ticks of /proc's stat.
 */
function engineThreadCpuSeconds(): number {
  const task = `/proc/self/task/${process.pid}`;
  try {
    const match = /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(readFileSync(`${task}/sched`, 'utf8'));
    if (match) return Number(match[1]) / 1000;
  } catch {
    // No sched file (a kernel without scheduler statistics): the stat file's ticks below.
  }
  const stat = readFileSync(`${task}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5), utime and stime, in clock ticks (USER_HZ, 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
if (process.platform !== 'linux')
  throw new Error('serve-overhead reads per-thread CPU time from /proc: run it on Linux');

const tokenizer = new ByteTokenizer();
const config = andromedaFamily.presetConfig('tiny', tokenizer.vocabSize, {
  dim: 32,
  depth: 1,
  heads: 1,
  headDim: 32,
  alibiHeads: 0,
  maxSeqLen: CONTEXT,
});
const model = andromedaFamily.create(config, { seed: 0, device: 'cpu' });
const engine = new InferenceEngine(model, tokenizer, {
  maxBatch: clients,
  tokenBudget: Math.max(2048, clients),
  maxQueue: 4 * clients,
  blockSize: 16,
  numBlocks: clients * Math.ceil(CONTEXT / 16) + 16,
});
const MODEL = 'bench';
const app = await createServer({
  engine,
  tokenizer,
  chatTemplate: loadChatTemplate([], tokenizer),
  modelId: MODEL,
  limits: { maxPromptTokens: CONTEXT, maxTokens: tokens, contextLength: CONTEXT, queueLimit: 4 * clients },
  apiKey: null,
  bodyLimit: 1 << 20,
});
const url = await app.listen({ host: '127.0.0.1', port: 0 });
const clientThread = new StreamingClients(url, MODEL, clients, tokens);

/** CPU seconds of the engine thread inside the model's steps (forward and sampling) so far. */
let modelCpuSeconds = 0;
{
  // The engine's private step runner, timed in place (as ./cpu-profile.ts times kernels): measurement only.
  const runner = (engine as unknown as { runner: { run(...args: unknown[]): unknown } }).runner;
  const run = runner.run.bind(runner);
  runner.run = (...args: unknown[]): unknown => {
    const started = engineThreadCpuSeconds();
    try {
      return run(...args);
    } finally {
      modelCpuSeconds += engineThreadCpuSeconds() - started;
    }
  };
}

interface Measured extends RoundResult {
  /** Engine-thread CPU microseconds per generated token. */
  cpuUsPerToken: number;
  /** The same without the model's forward and sampling: scheduling, token delivery, the server. */
  restUsPerToken: number;
  /** Engine-thread CPU microseconds per engine step. */
  cpuUsPerStep: number;
  /** Share of the round's wall time the engine thread's event loop was busy. */
  utilization: number;
  steps: number;
}

async function measured(round: () => Promise<RoundResult>): Promise<Measured> {
  const steps = engine.stats().steps;
  const elu = performance.eventLoopUtilization();
  const cpu = engineThreadCpuSeconds();
  const modelCpu = modelCpuSeconds;
  const result = await round();
  const seconds = engineThreadCpuSeconds() - cpu;
  const ran = engine.stats().steps - steps;
  return {
    ...result,
    cpuUsPerToken: (seconds * 1e6) / result.generated,
    restUsPerToken: ((seconds - (modelCpuSeconds - modelCpu)) * 1e6) / result.generated,
    cpuUsPerStep: (seconds * 1e6) / ran,
    utilization: performance.eventLoopUtilization(elu).utilization,
    steps: ran,
  };
}

const direct = (): Promise<Measured> => measured(() => directRound(engine, clients, tokens));
const http = (): Promise<Measured> => measured(() => clientThread.round());

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number, digits = 1): string => x.toFixed(digits);

console.log('# andromeda serve: the server thread’s cost per streamed token (CPU proxy of the GPU bar)');
console.log(
  `date ${new Date().toISOString()}, node ${process.version}, ${cpus().length} cores, load ${fmt(loadavg()[0]!, 2)}`,
);
console.log(
  `model: Andromeda dim ${config.dim}, depth ${config.depth}, random weights, byte tokenizer, cpu; ` +
    `${clients} clients × ${tokens} tokens after ${PROMPT_BYTES}-byte prompts`,
);
await direct();
await http();
const runs: { direct: Measured; http: Measured }[] = [];
for (let r = 1; r <= rounds; r++) {
  const d = await direct();
  const h = await http();
  runs.push({ direct: d, http: h });
  console.log(
    `round ${r}: engine thread CPU per token: direct ${fmt(d.cpuUsPerToken)} us, HTTP ${fmt(h.cpuUsPerToken)} us; ` +
      `without the model: direct ${fmt(d.restUsPerToken)} us, HTTP ${fmt(h.restUsPerToken)} us, ` +
      `server ${fmt(h.restUsPerToken - d.restUsPerToken)} us | per step: direct ${fmt(d.cpuUsPerStep, 0)} us ` +
      `(${d.steps} steps), HTTP ${fmt(h.cpuUsPerStep, 0)} us (${h.steps} steps) | ` +
      `wall: direct ${fmt(d.tokS, 0)} tok/s, HTTP ${fmt(h.tokS, 0)} tok/s; event loop busy ` +
      `${fmt(100 * d.utilization, 0)}% / ${fmt(100 * h.utilization, 0)}%`,
  );
}
const series = (pick: (m: Measured) => number) => ({
  direct: runs.map((r) => pick(r.direct)),
  http: runs.map((r) => pick(r.http)),
  server: runs.map((r) => pick(r.http) - pick(r.direct)),
});
const total = series((m) => m.cpuUsPerToken);
const rest = series((m) => m.restUsPerToken);
for (const [what, s] of [
  ['all of the engine thread', total],
  ['without the model', rest],
] as const)
  console.log(
    `${what}, median: direct ${fmt(median(s.direct))} us/token, HTTP ${fmt(median(s.http))} us/token, ` +
      `server ${fmt(median(s.server))} us/token; lowest: direct ${fmt(Math.min(...s.direct))}, ` +
      `HTTP ${fmt(Math.min(...s.http))}`,
  );
const rounded = (xs: number[]): number[] => xs.map((x) => +fmt(x));
console.log(
  'RESULT ' +
    JSON.stringify({
      bench: 'serve-overhead',
      clients,
      tokens_per_request: tokens,
      direct_us_per_token: rounded(total.direct),
      http_us_per_token: rounded(total.http),
      direct_rest_us_per_token: rounded(rest.direct),
      http_rest_us_per_token: rounded(rest.http),
      server_us_per_token_median: +fmt(median(total.server)),
      server_rest_us_per_token_median: +fmt(median(rest.server)),
    }),
);

if (values.profile) {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  const cpu = engineThreadCpuSeconds();
  const { generated } = await clientThread.round();
  const cpuUsPerToken = ((engineThreadCpuSeconds() - cpu) * 1e6) / generated;
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  writeFileSync(values.profile, JSON.stringify(profile));
  printProfile(profile as never, cpuUsPerToken);
}

await clientThread.close();
await app.close();
await engine.close();
model.dispose();

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Where a sample's stack says its time went, judged from the innermost frame outwards. */
function categoryOf(stack: ProfileNode['callFrame'][]): string {
  const has = (test: (frame: ProfileNode['callFrame']) => boolean): boolean => stack.some(test);
  if (has((f) => f.url.endsWith('/inference/paged-runner.js') && f.functionName === 'run'))
    return "the model's step (forward, sampling)";
  if (has((f) => f.functionName === 'connectionCorkNT' || f.functionName === 'writevGeneric')) return 'socket writes';
  if (has((f) => /\/serve\/|\/fastify\/|node:_http|node:net/.test(f.url))) return 'server (JS)';
  if (stack[0]?.functionName === '(idle)') return 'idle';
  if (stack[0]?.functionName === '(garbage collector)') return 'garbage collector';
  return 'other (scheduling, token delivery, event loop)';
}

/**
 * The profile by category and the functions with the most samples of their own (not their callees'). The
 * sampler ticks in wall time, so a category's CPU time per token is its share of the samples times the
 * thread's measured CPU time per token.
 */
function printProfile(profile: { nodes: ProfileNode[] }, cpuUsPerToken: number): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byFunction = new Map<string, number>();
  const byCategory = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0) continue;
    total += hits;
    const stack: ProfileNode['callFrame'][] = [];
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id))
      stack.push(byId.get(id)!.callFrame);
    const category = categoryOf(stack);
    byCategory.set(category, (byCategory.get(category) ?? 0) + hits);
    const { functionName, url: file, lineNumber } = node.callFrame;
    const where = file ? `${file.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'} ${where}`.trim();
    byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
  }
  console.log(
    `profile of one more HTTP round (engine thread, ${total} samples, ${fmt(cpuUsPerToken)} us of CPU per token), ` +
      'by category:',
  );
  for (const [category, hits] of [...byCategory].sort((a, b) => b[1] - a[1])) {
    const share = hits / total;
    console.log(`  ${fmt(100 * share).padStart(5)}%  ${fmt(share * cpuUsPerToken).padStart(5)} us/token  ${category}`);
  }
  console.log('self time:');
  for (const [key, hits] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 30))
    console.log(`  ${fmt((100 * hits) / total).padStart(5)}%  ${key}`);
}
