// Batch-1 greedy decode of a model the paged kernels cannot run (a sliding window, as Mistral's), on the CPU
// engine through the InferenceEngine: over a KV cache per sequence (what the engine does) against recomputing the
// whole sequence every step (what it did before; forced here by hiding the model behind the plain LanguageModel
// interface), same model, prompt and run. Decode tokens/s = (tokens after the first) / (first to last token).
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-unpaged-decode.js [preset] [promptTokens] [newTokens] [window]
import '../src/engine/index.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import { InferenceEngine } from '../src/inference/engine.js';
import type { LanguageModel } from '../src/train/model.js';

const [preset = 'small', promptArg = '512', newArg = '64', windowArg = '4096'] = process.argv.slice(2);
const promptLen = Number(promptArg),
  newTokens = Number(newArg);
const tokenizer = new ByteTokenizer();
const config = andromedaFamily.presetConfig(preset, tokenizer.vocabSize, { slidingWindow: Number(windowArg) });
const model = andromedaFamily.create(config, { seed: 0, device: 'cpu' });
const opaque: LanguageModel = {
  vocabSize: model.vocabSize,
  namedParameters: () => model.namedParameters(),
  stateDict: () => model.stateDict(),
  loadStateDict: (s) => model.loadStateDict(s),
  forward: (tokens, o) => model.forward(tokens, o),
  train: () => model.train(),
  eval: () => model.eval(),
  dispose: () => {},
};
const prompt = Int32Array.from({ length: promptLen }, (_, i) => (i * 37) % 256);

async function decode(target: LanguageModel): Promise<{ tokS: number; kvCache: string; ids: number[] }> {
  const engine = new InferenceEngine(target, tokenizer, { blockSize: 32, numBlocks: 256, maxBatch: 1 });
  try {
    const times: number[] = [];
    const ids: number[] = [];
    const stream = engine.submit(prompt, {
      temperature: 0,
      maxTokens: newTokens,
      ignoreEos: true,
      startWithEos: false,
    });
    for await (const event of stream) {
      times.push(performance.now());
      ids.push(event.tokenId);
    }
    const tokS = (times.length - 1) / ((times[times.length - 1]! - times[0]!) / 1000);
    return { tokS, kvCache: engine.stats().kvCache, ids };
  } finally {
    await engine.close();
  }
}

await decode(model); // warm-up
const cached = await decode(model);
const recomputed = await decode(opaque);
console.log(
  `RESULT ${JSON.stringify({
    bench: 'cpu-unpaged-decode',
    preset,
    window: Number(windowArg),
    threads: Number(process.env.ANDROMEDA_THREADS ?? 0) || 'default',
    prompt: promptLen,
    new: newTokens,
    per_sequence_cache_tok_s: Math.round(cached.tokS * 10) / 10,
    recompute_tok_s: Math.round(recomputed.tokS * 10) / 10,
    speedup: Math.round((cached.tokS / recomputed.tokS) * 10) / 10,
    same_tokens: cached.ids.join() === recomputed.ids.join(),
    kv_cache: [cached.kvCache, recomputed.kvCache],
  })}`,
);
model.dispose();
