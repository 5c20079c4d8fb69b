// Decoding through the InferenceEngine on one GPU (issue 14's bar), `andromeda-3b` in bfloat16 with seeded random
// weights, greedy, the end-of-document token ignored so every request runs its full length:
//   single:2048   batch-1 decode after a 2,048-token prompt
//   single:32768  batch-1 decode after a 32,768-token prompt (prefilled in chunks)
//   batch:64      64 requests at once after 128-token prompts: aggregate tokens/s
// Decode tokens/s of one request = (tokens after the first) / (time from its first to its last token), so the prompt
// is not counted; the aggregate counts every generated token over the time from the first request's first token
// to the last request's last. Random ids in, ids out: the tokenizer is a stand-in that spans the model's vocabulary
// (its text is not read), so sampling covers every logit as a real tokenizer of that size would.
//   node dist/bench/gpu-decode.js [case ...] [--no-graphs] [--no-overlap] [--device cuda] [--profile-at N]
// --no-overlap: each decode step launched only after the host read the one before (InferenceEngine overlapSteps).
// --profile-at N: for a kernel-by-kernel profile of decode steps, opens the outside profiler's range at the N-th
// token of the measured run and closes it two tokens later (`ncu --profile-from-start off ...`).
import { getEngine } from '../src/engine/index.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import type { Tokenizer } from '../src/data/tokenizer/tokenizer.js';
import { InferenceEngine } from '../src/inference/engine.js';
import type { CudaEngine } from '../src/engine/cuda.js';

const args = process.argv.slice(2);
const device = args.includes('--device') ? args[args.indexOf('--device') + 1]! : 'cuda';
const graphs = !args.includes('--no-graphs');
const overlapSteps = !args.includes('--no-overlap');
const preset = args.includes('--preset') ? args[args.indexOf('--preset') + 1]! : 'andromeda-3b';
const profileAt = args.includes('--profile-at') ? Number(args[args.indexOf('--profile-at') + 1]) : null;
const cases = args.filter((a) => /^(single|batch):\d+$/.test(a));
if (cases.length === 0) cases.push('single:2048', 'single:32768', 'batch:64');

const config = andromedaFamily.presetConfig(preset, 50432);
const dtype = device.startsWith('cuda') ? 'bfloat16' : 'float32';
const model = andromedaFamily.create(config, { seed: 0, device });
model.to!(dtype);

/** A tokenizer spanning the model's vocabulary: byte ids decode as bytes, the others as nothing. */
function vocabularyStandIn(vocabSize: number): Tokenizer {
  const bytes = new ByteTokenizer();
  const empty = new Uint8Array(0);
  return new Proxy(bytes, {
    get(target, key, receiver) {
      if (key === 'vocabSize') return vocabSize;
      if (key === 'tokenBytes') return (id: number) => (id < target.vocabSize ? target.tokenBytes(id) : empty);
      const value = Reflect.get(target, key, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

let seed = 12345;
const randomIds = (n: number): Int32Array =>
  Int32Array.from({ length: n }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % config.vocabSize);

interface Timed {
  first: number;
  last: number;
  tokens: number;
  submitted: number;
}

/** `profileFrom`: the token of the first request at which the profiler's range opens (closed two tokens later). */
async function runRequests(
  engine: InferenceEngine,
  prompts: Int32Array[],
  maxTokens: number,
  profileFrom: number | null = null,
): Promise<Timed[]> {
  const streams = prompts.map((prompt) => {
    const submitted = performance.now();
    return {
      submitted,
      stream: engine.submit(prompt, { temperature: 0, maxTokens, ignoreEos: true, startWithEos: false }),
    };
  });
  return Promise.all(
    streams.map(async ({ submitted, stream }, index) => {
      const t: Timed = { first: 0, last: 0, tokens: 0, submitted };
      for await (const _event of stream) {
        const now = performance.now();
        if (t.tokens === 0) t.first = now;
        t.last = now;
        t.tokens++;
        if (index === 0 && profileFrom !== null && (t.tokens === profileFrom || t.tokens === profileFrom + 2))
          (getEngine(device) as CudaEngine).profilerRange(t.tokens === profileFrom);
      }
      return t;
    }),
  );
}

for (const c of cases) {
  const [kind, sizeText] = c.split(':') as ['single' | 'batch', string];
  const size = Number(sizeText);
  const prompts = kind === 'single' ? [randomIds(size)] : Array.from({ length: size }, () => randomIds(128));
  const maxTokens = kind === 'single' ? (size > 8192 ? 128 : 256) : 128;
  const positions = prompts.reduce((s, p) => s + p.length + maxTokens, 0);
  const engine = new InferenceEngine(model, vocabularyStandIn(config.vocabSize), {
    blockSize: 32,
    memoryBytes: Math.max(2 ** 30, positions * 40_000),
    maxBatch: Math.max(8, prompts.length),
    tokenBudget: 2048,
    cudaGraphs: graphs,
    overlapSteps,
  });
  try {
    // Warm-up: the same requests' shapes, so kernels are loaded and every decode graph the timed run replays (one
    // per bucket of batch size and block-table width) is captured before it, as the anchor's warm-up generates from
    // the same prompt; `graphs_captured_timed` in the result says no capture fell inside the timed run.
    await runRequests(
      engine,
      prompts.map((p) => randomIds(p.length)),
      maxTokens,
    );
    const graphsBefore = engine.stats().graphs;
    const runs = await runRequests(engine, prompts, maxTokens, profileAt);
    const start = Math.min(...runs.map((r) => r.first));
    const end = Math.max(...runs.map((r) => r.last));
    const generated = runs.reduce((s, r) => s + r.tokens, 0);
    const perRequest = runs.map((r) => (r.tokens - 1) / ((r.last - r.first) / 1000));
    console.log(
      `RESULT ${JSON.stringify({
        bench: 'gpu-decode',
        preset,
        case: c,
        graphs,
        overlap: overlapSteps,
        device,
        new: maxTokens,
        decode_tok_s: kind === 'single' ? Math.round(perRequest[0]!) : undefined,
        aggregate_tok_s: Math.round(generated / ((end - start) / 1000)),
        ttft_ms: Math.round(Math.max(...runs.map((r) => r.first - r.submitted))),
        graphs_captured_timed: engine.stats().graphs - graphsBefore,
        stats: engine.stats(),
      })}`,
    );
  } finally {
    await engine.close();
  }
}
model.dispose();
