// Speculative decoding inside the inference engine: batches of greedy requests through the engine with and
// without a draft, in one process on one device, the target and draft checkpoints of bench/train-draft-target.sh
// (any two runs with one tokenizer will do). Every request of a batch gets its own prompt (a common text with a
// different opening), all are submitted at once, and the time runs from submit to the last result, so the number
// is the engine's aggregate throughput, prefill included. Checks that the draft changes no request's tokens and
// prints one RESULT line per case: tokens/s (aggregate), speed-up over the same batch without the draft,
// acceptance rate (accepted / proposed) and tokens per sequence per step.
//   node dist/bench/gpu-speculative-engine.js runs/speculative/target runs/speculative/draft \
//     [k,k,…] [batches] [tokens] [device]
// Defaults: k = 2,4; batches 1,8,32; 256 tokens per request; device cuda (bfloat16 weights; float32 on the CPU).
import '../src/engine/index.js';
import { getEngine } from '../src/engine/registry.js';
import { loadDraftModel, loadModelForInference, type LoadedModel } from '../src/inference/load.js';
import { unwrapAndromeda } from '../src/train/andromeda-adapter.js';
import { InferenceEngine } from '../src/inference/engine.js';

const [targetDir, draftDir, kList = '2,4', batchList = '1,8,32', tokenArg = '256', device = 'cuda'] =
  process.argv.slice(2);
if (!targetDir || !draftDir) {
  console.error('usage: gpu-speculative-engine.js <target run> <draft run> [k,k,…] [batches] [tokens] [device]');
  process.exit(2);
}
const maxTokens = Number(tokenArg);
const ks = kList.split(',').map(Number);
const batches = batchList.split(',').map(Number);
const OPENINGS = ['The', 'In', 'After', 'When', 'Long', 'Once', 'Before', 'Some'];
const TEXT =
  ' history of the city begins with a small settlement on the river, where traders met to exchange grain, ' +
  'salt and cloth. Over the following centuries';

function prepare(loaded: LoadedModel): number {
  const model = unwrapAndromeda(loaded.model);
  if (!model) throw new Error(`${loaded.dir}: not an Andromeda checkpoint`);
  if (device.startsWith('cuda')) model.to('bfloat16');
  return model.parameterCount();
}

const target = await loadModelForInference(targetDir, device);
const draft = await loadDraftModel(draftDir, target, device, undefined, 'draft');
const parameters = { target: prepare(target), draft: prepare(draft) };
console.error(
  `target ${parameters.target.toLocaleString()} parameters, draft ${parameters.draft.toLocaleString()}; ` +
    `${maxTokens} tokens per request; ${device}`,
);

interface Run {
  tokens: number[][];
  seconds: number;
  steps: number;
  proposed: number;
  accepted: number;
}

async function run(batch: number, k: number | null): Promise<Run> {
  const engine = new InferenceEngine(target.model, target.tokenizer, {
    maxBatch: Math.max(batch, 1),
    memoryBytes: 2 ** 30,
    draft: k === null ? undefined : { model: draft.model, tokens: k },
  });
  try {
    const prompts = Array.from(
      { length: batch },
      (_, i) => `${OPENINGS[i % OPENINGS.length]} ${Math.floor(i / OPENINGS.length)}${TEXT}`,
    );
    const params = { temperature: 0, maxTokens, ignoreEos: true };
    // Warm-up: kernels loaded, pools and graphs allocated once.
    await Promise.all(prompts.map((p) => engine.submit(p, { ...params, maxTokens: 8 }).result));
    const warm = engine.stats();
    getEngine(device).synchronize();
    const start = performance.now();
    const results = await Promise.all(prompts.map((p) => engine.submit(p, params).result));
    getEngine(device).synchronize();
    const seconds = (performance.now() - start) / 1000;
    const stats = engine.stats();
    for (const r of results) if (r.error) throw r.error;
    return {
      tokens: results.map((r) => r.tokenIds),
      seconds,
      steps: stats.steps - warm.steps,
      proposed: (stats.speculative?.proposed ?? 0) - (warm.speculative?.proposed ?? 0),
      accepted: (stats.speculative?.accepted ?? 0) - (warm.speculative?.accepted ?? 0),
    };
  } finally {
    await engine.close();
  }
}

let allIdentical = true;
for (const batch of batches) {
  const plain = await run(batch, null);
  const generated = (r: Run): number => r.tokens.reduce((n, t) => n + t.length, 0);
  const plainRate = generated(plain) / plain.seconds;
  console.log(
    `RESULT ${JSON.stringify({ bench: 'speculative-engine', batch, mode: 'alone', tokensPerSecond: plainRate })}`,
  );
  for (const k of ks) {
    const spec = await run(batch, k);
    const identical = spec.tokens.filter((t, i) => t.join() === plain.tokens[i]!.join()).length;
    allIdentical &&= identical === batch;
    const rate = generated(spec) / spec.seconds;
    console.log(
      `RESULT ${JSON.stringify({
        bench: 'speculative-engine',
        batch,
        k,
        tokensPerSecond: rate,
        speedup: rate / plainRate,
        acceptance: spec.accepted / Math.max(1, spec.proposed),
        tokensPerSequenceStep: generated(spec) / batch / Math.max(1, spec.steps),
        identicalToTarget: `${identical}/${batch}`,
      })}`,
    );
  }
}
target.model.dispose();
draft.model.dispose();
process.exit(allIdentical ? 0 : 1);
