// The server's own cost per streamed token, on the CPU: a proxy for issue 15's GPU bar
// (./gpu-serve.ts), where one GPU step takes ~5.2 ms for 64 sequences and everything the server adds to
// the engine's thread per step (one server-sent event per token of each client) comes out of the 10%
// that 64 HTTP clients may lose against the engine driven directly.
//
// The same workload as gpu-serve (./serve-clients.ts: 64 clients in a worker thread streaming
// /v1/completions, usage checked; the same requests submitted to the engine directly), over a model
// whose step is as cheap as it gets (an Andromeda of dim 32, depth 1, random weights, byte vocabulary),
// so that the server's share of the engine thread's time is large enough to measure. The HTTP server runs
// in its own thread, as `andromeda serve` runs it ('own'), and in the engine's thread ('same'), each on its
// own port. The machine may be shared, so the figures are the engine thread's CPU time (Linux:
// /proc/self/task/<pid>/sched), not wall time: per token, an HTTP round minus the direct round is what
// serving costs the engine's thread. Order: warm-up (direct, then HTTP in each thread), then `rounds` × the
// same; medians of the per-round figures are reported.
//
//   npx tsc -p tsconfig.json && node dist/bench/serve-overhead.js [--clients 64] [--tokens 256]
//     [--rounds 5] [--http-thread own,same] [--profile FILE.cpuprofile] [--profile-rounds 2]
//
// On a shared machine the model's step varies from round to round by more than the server costs. With
// --profile, `profile-rounds` more rounds of each kind run under V8's sampling profiler (it samples the
// engine's thread), and each round's CPU time per token is split by where its samples are (the model's step,
// socket writes, the server's JavaScript, garbage collection, the rest): the categories outside the model's
// step compare HTTP with direct without its noise. The last profile of the first --http-thread kind is
// written to FILE (open it in Chrome DevTools), and the functions with the most self time in it are printed.
import '../src/engine/index.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
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
    clients: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '256' },
    rounds: { type: 'string', default: '5' },
    profile: { type: 'string' },
    'profile-rounds': { type: 'string', default: '2' },
    'http-thread': { type: 'string', default: 'own,same' },
  },
});
const threads = httpThreadsFlag(values['http-thread']!);
function positiveInteger(flag: string): number {
  const value = Number(values[flag as keyof typeof values]);
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`--${flag} must be a positive integer, got ${values[flag as keyof typeof values]}`);
  return value;
}
const clients = positiveInteger('clients');
const tokens = positiveInteger('tokens');
const rounds = positiveInteger('rounds');
const profileRounds = positiveInteger('profile-rounds');
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
const servers = await startBenchServers(threads, engine, tokenizer, {
  model: MODEL,
  clients,
  tokens,
  maxPromptTokens: CONTEXT,
  contextLength: CONTEXT,
});
/** What a round runs: the engine directly, or HTTP clients of the server in one of the threads. */
type Kind = 'direct' | HttpThread;
const KINDS: Kind[] = ['direct', ...threads];
const kindName = (kind: Kind): string => (kind === 'direct' ? 'direct' : `HTTP ${kind} thread`);

interface Measured extends RoundResult {
  /** Engine-thread CPU microseconds per generated token. */
  cpuUsPerToken: number;
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
  const result = await round();
  const seconds = engineThreadCpuSeconds() - cpu;
  const ran = engine.stats().steps - steps;
  return {
    ...result,
    cpuUsPerToken: (seconds * 1e6) / result.generated,
    cpuUsPerStep: (seconds * 1e6) / ran,
    utilization: performance.eventLoopUtilization(elu).utilization,
    steps: ran,
  };
}

const roundOf = (kind: Kind): Promise<Measured> =>
  measured(() => (kind === 'direct' ? directRound(engine, clients, tokens) : servers.get(kind)!.clients.round()));

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number, digits = 1): string => x.toFixed(digits);

/** Where the profiled rounds' samples are counted (see `categoryOf`). */
const MODEL_STEP = "the model's step (forward, sampling)";
const CATEGORIES = [
  MODEL_STEP,
  'socket writes',
  'server (JS)',
  'garbage collector',
  'other (scheduling, token delivery, event loop)',
];
/** Samples taken while the thread waited for events: not CPU time. */
const IDLE = 'idle';

console.log('# andromeda serve: the server thread’s cost per streamed token (CPU proxy of the GPU bar)');
console.log(
  `date ${new Date().toISOString()}, node ${process.version}, ${cpus().length} cores, load ${fmt(loadavg()[0]!, 2)}`,
);
console.log(
  `model: Andromeda dim ${config.dim}, depth ${config.depth}, random weights, byte tokenizer, cpu; ` +
    `${clients} clients × ${tokens} tokens after ${PROMPT_BYTES}-byte prompts`,
);
for (const kind of KINDS) await roundOf(kind); // warm-up
const runs: Map<Kind, Measured>[] = [];
for (let r = 1; r <= rounds; r++) {
  const round = new Map<Kind, Measured>();
  for (const kind of KINDS) round.set(kind, await roundOf(kind));
  runs.push(round);
  const d = round.get('direct')!;
  const parts = KINDS.map((kind) => {
    const m = round.get(kind)!;
    const server = kind === 'direct' ? '' : ` (server ${fmt(m.cpuUsPerToken - d.cpuUsPerToken)})`;
    return (
      `${kindName(kind)} ${fmt(m.cpuUsPerToken)} us/token${server}, ${fmt(m.cpuUsPerStep, 0)} us/step ` +
      `(${m.steps} steps), ${fmt(m.tokS, 0)} tok/s wall, loop busy ${fmt(100 * m.utilization, 0)}%`
    );
  });
  console.log(`round ${r}: engine thread CPU: ${parts.join(' | ')}`);
}
const perToken = (kind: Kind): number[] => runs.map((round) => round.get(kind)!.cpuUsPerToken);
const serverCost = (kind: HttpThread): number[] =>
  runs.map((round) => round.get(kind)!.cpuUsPerToken - round.get('direct')!.cpuUsPerToken);
console.log(
  `median: direct ${fmt(median(perToken('direct')))} us/token; ` +
    threads
      .map(
        (t) =>
          `${kindName(t)} ${fmt(median(perToken(t)))} us/token, server (per round, HTTP − direct) ` +
          `${fmt(median(serverCost(t)))} us/token`,
      )
      .join('; '),
);
const rounded = (xs: number[]): number[] => xs.map((x) => +fmt(x));
console.log(
  'RESULT ' +
    JSON.stringify({
      bench: 'serve-overhead',
      clients,
      tokens_per_request: tokens,
      direct_us_per_token: rounded(perToken('direct')),
      http_thread: Object.fromEntries(
        threads.map((t) => [
          t,
          {
            http_us_per_token: rounded(perToken(t)),
            server_us_per_token: rounded(serverCost(t)),
            server_us_per_token_median: +fmt(median(serverCost(t))),
          },
        ]),
      ),
    }),
);

if (values.profile) await profiledRounds(values.profile);

for (const server of servers.values()) await server.close();
await engine.close();
model.dispose();

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
}

/** Where a sample's time went, from its stack (innermost frame first). */
function categoryOf(stack: CallFrame[]): string {
  const has = (test: (frame: CallFrame) => boolean): boolean => stack.some(test);
  if (has((f) => f.url.endsWith('/inference/paged-runner.js') && f.functionName === 'run')) return MODEL_STEP;
  if (has((f) => f.functionName === 'connectionCorkNT' || f.functionName === 'writevGeneric')) return 'socket writes';
  if (has((f) => /\/serve\/|\/fastify\/|node:_http|node:net/.test(f.url))) return 'server (JS)';
  if (stack[0]?.functionName === '(garbage collector)') return 'garbage collector';
  if (stack[0]?.functionName === '(idle)') return IDLE;
  return 'other (scheduling, token delivery, event loop)';
}

/** Each sample's innermost frame and category. */
function* samplesOf(profile: Profile): Generator<{ frame: CallFrame; category: string; hits: number }> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  for (const node of profile.nodes) {
    if (!node.hitCount) continue;
    const stack: CallFrame[] = [];
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id))
      stack.push(byId.get(id)!.callFrame);
    yield { frame: node.callFrame, category: categoryOf(stack), hits: node.hitCount };
  }
}

/**
 * CPU microseconds per token by category: the profiler ticks in wall time, so a category's share of the
 * samples taken while the thread ran (idle ones left out) is taken of the round's measured CPU time.
 */
function splitByCategory(profile: Profile, cpuUsPerToken: number): Map<string, number> {
  const hits = new Map<string, number>();
  let running = 0;
  for (const sample of samplesOf(profile)) {
    if (sample.category === IDLE) continue;
    hits.set(sample.category, (hits.get(sample.category) ?? 0) + sample.hits);
    running += sample.hits;
  }
  return new Map(CATEGORIES.map((c) => [c, ((hits.get(c) ?? 0) / running) * cpuUsPerToken]));
}

async function profiledRounds(file: string): Promise<void> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  const split = new Map<Kind, Map<string, number>[]>(KINDS.map((kind) => [kind, []]));
  let lastHttp: Profile | null = null;
  for (let r = 0; r < profileRounds; r++)
    for (const kind of KINDS) {
      await session.post('Profiler.start');
      const { cpuUsPerToken } = await roundOf(kind);
      const { profile } = await session.post('Profiler.stop');
      split.get(kind)!.push(splitByCategory(profile as Profile, cpuUsPerToken));
      if (kind === threads[0]) lastHttp = profile as Profile;
    }
  session.disconnect();
  const mean = (kind: Kind, category: string): number =>
    split.get(kind)!.reduce((sum, m) => sum + m.get(category)!, 0) / split.get(kind)!.length;
  console.log(`${profileRounds} profiled rounds of each: engine thread CPU us per token, by where it went`);
  console.log('  ' + KINDS.map((kind) => kindName(kind).padStart(16)).join(' '));
  const outside = new Map<Kind, number>(KINDS.map((kind) => [kind, 0]));
  for (const category of CATEGORIES) {
    const cells = KINDS.map((kind) => {
      const value = mean(kind, category);
      if (category !== MODEL_STEP) outside.set(kind, outside.get(kind)! + value);
      return fmt(value).padStart(16);
    });
    console.log(`  ${cells.join(' ')}  ${category}`);
  }
  console.log(
    `  ${KINDS.map((kind) => fmt(outside.get(kind)!).padStart(16)).join(' ')}  all but the model's step ` +
      `(HTTP minus direct: the server's cost per token)`,
  );
  writeFileSync(file, JSON.stringify(lastHttp));
  const self = new Map<string, number>();
  let total = 0;
  for (const { frame, hits } of samplesOf(lastHttp!)) {
    const where = frame.url ? `${frame.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${frame.lineNumber + 1}` : '';
    const key = `${frame.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + hits);
    total += hits;
  }
  console.log(`the last ${kindName(threads[0]!)} round's profile (${file}), self time:`);
  for (const [key, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25))
    console.log(`  ${fmt((100 * hits) / total).padStart(5)}%  ${key}`);
}
