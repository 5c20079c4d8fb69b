// Batch-1 greedy decode of a model the paged kernels cannot run, on the CPU engine through the InferenceEngine: over
// a KV cache per sequence (what the engine does for it) against recomputing the whole sequence every step (what it
// did before; forced here by hiding the model behind the plain LanguageModel interface), with the paged pool of the
// same model without what keeps it off the paged path as the anchor, same prompt and run. The model: the preset
// with LongRoPE whose original length is never reached and whose factors are 1 (so it computes what the plain model
// computes, and all three must give the same tokens). Decode tokens/s = (tokens after the first) / (first to last).
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-unpaged-decode.js [preset] [promptTokens] [newTokens]
import '../src/engine/index.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import { InferenceEngine } from '../src/inference/engine.js';
import type { LanguageModel } from '../src/train/model.js';

const [preset = 'small', promptArg = '512', newArg = '64'] = process.argv.slice(2);
const promptLen = Number(promptArg),
  newTokens = Number(newArg);
const tokenizer = new ByteTokenizer();
const plain = andromedaFamily.presetConfig(preset, tokenizer.vocabSize);
const pairs = (plain.rotary?.dim ?? 0) / 2;
if (pairs === 0) throw new Error(`cpu-unpaged-decode: preset ${preset} has no rotary features for LongRoPE`);
const ones = Array.from({ length: pairs }, () => 1);
const longRopeConfig = andromedaFamily.presetConfig(preset, tokenizer.vocabSize, {
  rotary: {
    ...plain.rotary,
    longRope: { shortFactors: ones, longFactors: ones, originalMaxSeqLen: 1 << 20, attentionFactor: 1 },
  },
});
const model = andromedaFamily.create(longRopeConfig, { seed: 0, device: 'cpu' });
const pagedModel = andromedaFamily.create(plain, { seed: 0, device: 'cpu' });
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
const paged = await decode(pagedModel);
console.log(
  `RESULT ${JSON.stringify({
    bench: 'cpu-unpaged-decode',
    preset,
    threads: Number(process.env.ANDROMEDA_THREADS ?? 0) || 'default',
    prompt: promptLen,
    new: newTokens,
    per_sequence_cache_tok_s: Math.round(cached.tokS * 10) / 10,
    recompute_tok_s: Math.round(recomputed.tokS * 10) / 10,
    paged_anchor_tok_s: Math.round(paged.tokS * 10) / 10,
    speedup: Math.round((cached.tokS / recomputed.tokS) * 10) / 10,
    same_tokens: cached.ids.join() === recomputed.ids.join() && cached.ids.join() === paged.ids.join(),
    kv_cache: [cached.kvCache, recomputed.kvCache, paged.kvCache],
  })}`,
);
model.dispose();
pagedModel.dispose();
