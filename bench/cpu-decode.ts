// Batch-1 greedy decode on the CPU engine through the InferenceEngine (the llama.cpp comparison of
// bench/cpu-decode-vs-llamacpp.sh): a preset with seeded random weights in float32, a prompt of random ids, the
// end-of-document token ignored. Decode tokens/s = (tokens after the first) / (time from the first to the last).
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-decode.js [preset] [promptTokens] [newTokens]
import '../src/engine/index.js';
import { andromedaFamily } from '../src/train/andromeda-adapter.js';
import { ByteTokenizer } from '../src/data/tokenizer/byte.js';
import { InferenceEngine } from '../src/inference/engine.js';

const [preset = 'small', promptArg = '16', newArg = '256'] = process.argv.slice(2);
const promptLen = Number(promptArg),
  newTokens = Number(newArg);
const tokenizer = new ByteTokenizer();
const model = andromedaFamily.create(andromedaFamily.presetConfig(preset, tokenizer.vocabSize), {
  seed: 0,
  device: 'cpu',
});
const prompt = Int32Array.from({ length: promptLen }, (_, i) => (i * 37) % 256);
const engine = new InferenceEngine(model, tokenizer, { blockSize: 32, numBlocks: 64, maxBatch: 1, tokenBudget: 512 });

async function decodeOnce(): Promise<number> {
  const times: number[] = [];
  const stream = engine.submit(prompt, { temperature: 0, maxTokens: newTokens, ignoreEos: true, startWithEos: false });
  for await (const _event of stream) times.push(performance.now());
  return (times.length - 1) / ((times[times.length - 1]! - times[0]!) / 1000);
}

await decodeOnce(); // warm-up
const runs = [await decodeOnce(), await decodeOnce(), await decodeOnce()];
console.log(
  `RESULT ${JSON.stringify({
    bench: 'andromeda-cpu-decode',
    preset,
    params: andromedaFamily.parameterCount!(andromedaFamily.presetConfig(preset, tokenizer.vocabSize)),
    threads: Number(process.env.ANDROMEDA_THREADS ?? 0) || 'default',
    prompt: promptLen,
    new: newTokens,
    tok_s: Math.round(Math.max(...runs)),
    runs: runs.map(Math.round),
  })}`,
);
await engine.close();
model.dispose();
