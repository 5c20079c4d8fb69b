// Decoding through InferenceEngine (paged cache, device sampling, decode graphs on CUDA), greedy, random weights:
//   batch 1 after a 2,048-token prompt, batch 1 after a 32,768-token prompt, and N concurrent sequences.
// Prints one RESULT line per case: time to first token, decode tokens/s (batch 1: from the first token to the
// last; concurrent: every generated token over the wall time of the run) and the engine's stats.
//   node dist/bench/engine-decode.js [preset] [device] [tokens] [concurrent] [kv GiB]
// Defaults: andromeda-3b, cuda (bfloat16 weights; float32 on the CPU), 256 tokens, 64 sequences, 16 GiB.
import '../src/engine/index.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { InferenceEngine, type GenerationStream } from '../src/inference/engine.js';
import type { Tokenizer } from '../src/data/tokenizer/tokenizer.js';

const [preset = 'andromeda-3b', device = 'cuda', tokenArg = '256', concurrentArg = '64', kvArg = '16'] =
  process.argv.slice(2);
const maxTokens = Number(tokenArg);
const concurrent = Number(concurrentArg);
const config = andromedaFamily.presetConfig(preset, 256);
const vocab = config.vocabSize;

/** Ids stand for themselves: the bench feeds and reads token ids, never text. */
const idTokenizer = {
  kind: 'byte',
  vocabSize: vocab,
  eosId: vocab - 1,
  specialTokens: new Map(),
  tokenBytes: (id: number) => new TextEncoder().encode(`<${id}>`),
} as unknown as Tokenizer;

const model = andromedaFamily.create(config, { seed: 1, device });
if (device.startsWith('cuda')) model.to!('bfloat16');
const engine = new InferenceEngine(model, idTokenizer, {
  memoryBytes: Number(kvArg) * 2 ** 30,
  maxBatch: Math.max(64, concurrent),
  tokenBudget: 2048,
});

function prompt(length: number, seed: number): Int32Array {
  return Int32Array.from({ length }, (_, i) => (i * 7919 + seed * 104729) % (vocab - 1));
}

/** Runs streams to the end; returns when each produced its first and last token. */
async function timedStreams(streams: GenerationStream[]): Promise<{ first: number[]; last: number[]; tokens: number }> {
  const first: number[] = [];
  const last: number[] = [];
  let tokens = 0;
  await Promise.all(
    streams.map(async (stream, i) => {
      for await (const _ of stream) {
        const now = performance.now();
        first[i] ??= now;
        last[i] = now;
        tokens++;
      }
      const result = await stream.result;
      if (result.finishReason !== 'length') throw new Error(`stream ${i} ended with ${result.finishReason}`);
    }),
  );
  return { first, last, tokens };
}

async function batchOne(promptTokens: number): Promise<void> {
  const params = { temperature: 0, maxTokens, ignoreEos: true, startWithEos: false };
  // Warm-up with the same shapes: kernels loaded and the decode graphs of this table width captured.
  await engine.submit(prompt(promptTokens, 99), { ...params, maxTokens: 8 }).result;
  const start = performance.now();
  const { first, last } = await timedStreams([engine.submit(prompt(promptTokens, 1), params)]);
  console.log(
    `RESULT ${JSON.stringify({
      bench: 'engine-decode',
      preset,
      device,
      case: `batch 1 after ${promptTokens} prompt tokens`,
      timeToFirstTokenMs: first[0]! - start,
      tokensPerSecond: (maxTokens - 1) / ((last[0]! - first[0]!) / 1000),
      stats: engine.stats(),
    })}`,
  );
}

async function concurrentSequences(promptTokens: number): Promise<void> {
  const params = { temperature: 0, maxTokens, ignoreEos: true, startWithEos: false };
  await Promise.all(
    Array.from(
      { length: concurrent },
      (_, i) => engine.submit(prompt(promptTokens, 1000 + i), { ...params, maxTokens: 8 }).result,
    ),
  );
  const start = performance.now();
  const streams = Array.from({ length: concurrent }, (_, i) => engine.submit(prompt(promptTokens, i), params));
  const { first, tokens } = await timedStreams(streams);
  const seconds = (performance.now() - start) / 1000;
  console.log(
    `RESULT ${JSON.stringify({
      bench: 'engine-decode',
      preset,
      device,
      case: `${concurrent} concurrent sequences, ${promptTokens} prompt tokens each`,
      meanTimeToFirstTokenMs: first.reduce((a, t) => a + (t - start), 0) / first.length,
      tokensPerSecond: tokens / seconds,
      stats: engine.stats(),
    })}`,
  );
}

console.error(
  `${preset} on ${device}: ${maxTokens} tokens per sequence; pool ${JSON.stringify(engine.stats().blocks)}`,
);
try {
  await batchOne(2048);
  await concurrentSequences(128);
  await batchOne(32768);
} finally {
  await engine.close();
  model.dispose();
}
