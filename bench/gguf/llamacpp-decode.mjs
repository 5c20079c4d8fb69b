// Batch-1 greedy decode speed of llama.cpp (through the node-llama-cpp package, prebuilt) on a GGUF file, CPU only.
// Run from a folder where node-llama-cpp is installed (bench/cpu-decode-vs-llamacpp.sh does that):
//   node llamacpp-decode.mjs MODEL.gguf THREADS PROMPT_TOKENS NEW_TOKENS
// Prints one RESULT json line: decode tokens/s over the generated tokens after the first.
import { getLlama } from 'node-llama-cpp';

const [modelPath, threadsArg = '2', promptArg = '16', newArg = '256'] = process.argv.slice(2);
const threads = Number(threadsArg),
  promptLen = Number(promptArg),
  newTokens = Number(newArg);
const llama = await getLlama({ gpu: false, logLevel: 'error' });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 1024, threads, batchSize: 512, sequences: 1 });
const prompt = Array.from({ length: promptLen }, (_, i) => 3 + ((i * 37) % 250));

async function decodeOnce() {
  const sequence = context.getSequence();
  const times = [];
  let count = 0;
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    void token;
    times.push(performance.now());
    if (++count >= newTokens) break;
  }
  sequence.dispose();
  return (count - 1) / ((times[count - 1] - times[0]) / 1000);
}

await decodeOnce(); // warm-up
const runs = [await decodeOnce(), await decodeOnce(), await decodeOnce()];
console.log(
  'RESULT ' +
    JSON.stringify({
      bench: 'llamacpp-decode',
      model: modelPath.split('/').pop(),
      threads,
      prompt: promptLen,
      new: newTokens,
      tok_s: Math.round(Math.max(...runs)),
      runs: runs.map(Math.round),
    }),
);
await context.dispose();
await model.dispose();
await llama.dispose();
