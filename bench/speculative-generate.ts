// Speculative decoding against the target alone, batch 1, greedy, in one process on one device: the target and
// draft checkpoints of bench/train-draft-target.sh (any two runs with one tokenizer will do). Both decode through
// the paged forward with a host read of each step's logits, so the comparison isolates what speculation saves.
// Checks that every speculative output equals the target's own, and prints one RESULT line per case:
// tokens/s, speed-up over the target alone, acceptance rate (accepted / proposed) and tokens per target pass.
//   node dist/bench/speculative-generate.js runs/speculative/target runs/speculative/draft [k,k,…] [tokens] [device]
// Defaults: k = 2,3,4,6; 256 tokens; device cuda (bfloat16 weights; float32 on the CPU).
import '../src/engine/index.js';
import { getEngine } from '../src/engine/registry.js';
import { loadModelForInference } from '../src/inference/load.js';
import { unwrapAndromeda } from '../src/train/andromeda-adapter.js';
import type { Andromeda } from '../src/model/andromeda.js';
import { buildPagedStep } from '../src/model/paged-step.js';
import { argmax } from '../src/inference/sampling.js';
import { speculativeGenerate } from '../src/inference/speculative.js';

const usage = 'usage: speculative-generate.js <target run> <draft run> [k,k,…] [tokens] [device]';
const [targetDir, draftDir, kList = '2,3,4,6', tokenArg = '256', device = 'cuda'] = process.argv.slice(2);
if (!targetDir || !draftDir) {
  console.error(usage);
  process.exit(2);
}
const maxTokens = Number(tokenArg);
const ks = kList.split(',').map(Number);
if (![maxTokens, ...ks].every((v) => Number.isInteger(v) && v >= 1)) {
  console.error(`k '${kList}' and tokens '${tokenArg}' must be positive integers\n${usage}`);
  process.exit(2);
}
const PROMPT =
  'The history of the city begins with a small settlement on the river, where traders met to exchange grain, ' +
  'salt and cloth. Over the following centuries';

async function load(dir: string): Promise<{ model: Andromeda; encode(text: string): Int32Array }> {
  const loaded = await loadModelForInference(dir, device);
  const model = unwrapAndromeda(loaded.model);
  if (!model) throw new Error(`${dir}: not an Andromeda checkpoint`);
  if (device.startsWith('cuda')) model.to('bfloat16');
  model.eval();
  return { model, encode: (text) => loaded.tokenizer.encode(text) };
}

/** The target alone: prefill, then one paged step per token, greedy on the host (as the speculative loop reads). */
function greedyAlone(model: Andromeda, prompt: Int32Array, tokens: number): number[] {
  const blockSize = 32;
  const cache = model.createPagedKVCache(Math.ceil((prompt.length + tokens) / blockSize), { blockSize });
  const table = Int32Array.from({ length: cache.numBlocks }, (_, i) => i);
  const out: number[] = [];
  let feed = Array.from(prompt),
    cached = 0;
  try {
    while (out.length < tokens) {
      const step = buildPagedStep(
        [{ tokens: feed, cached, blockTable: table.subarray(0, Math.ceil((cached + feed.length) / blockSize)) }],
        { blockSize, device: model.device },
      );
      const logits = model.forwardPaged(step, cache);
      const next = argmax(logits.toArray());
      logits.dispose();
      step.dispose();
      cached += feed.length;
      out.push(next);
      feed = [next];
    }
  } finally {
    cache.dispose();
  }
  return out;
}

function timed<T>(fn: () => T): { value: T; seconds: number } {
  getEngine(device).synchronize();
  const start = performance.now();
  const value = fn();
  getEngine(device).synchronize();
  return { value, seconds: (performance.now() - start) / 1000 };
}

const target = await load(targetDir);
const draft = await load(draftDir);
const prompt = target.encode(PROMPT);
if (draft.encode(PROMPT).some((t, i) => t !== prompt[i])) throw new Error('the two runs use different tokenizers');
console.error(
  `target ${target.model.parameterCount().toLocaleString()} parameters, draft ` +
    `${draft.model.parameterCount().toLocaleString()}; prompt ${prompt.length} tokens; ${maxTokens} tokens; ${device}`,
);
greedyAlone(target.model, prompt, 8); // warm-up: kernels loaded, pools allocated once
const alone = timed(() => greedyAlone(target.model, prompt, maxTokens));
const aloneRate = maxTokens / alone.seconds;
console.log(`RESULT ${JSON.stringify({ bench: 'speculative', mode: 'target alone', tokensPerSecond: aloneRate })}`);
let allIdentical = true;
for (const k of ks) {
  speculativeGenerate(target.model, draft.model, prompt, { draftTokens: k, maxTokens: 8, temperature: 0 });
  const run = timed(() =>
    speculativeGenerate(target.model, draft.model, prompt, { draftTokens: k, maxTokens, temperature: 0 }),
  );
  const r = run.value;
  const identical = r.tokens.length === alone.value.length && r.tokens.every((t, i) => t === alone.value[i]);
  if (!identical) {
    const at = alone.value.findIndex((t, i) => t !== r.tokens[i]);
    console.error(
      `MISMATCH k ${k}: the speculative output differs from the target alone at token ${at < 0 ? r.tokens.length : at}`,
    );
  }
  allIdentical &&= identical;
  const rate = r.tokens.length / run.seconds;
  console.log(
    `RESULT ${JSON.stringify({
      bench: 'speculative',
      k,
      tokensPerSecond: rate,
      speedup: rate / aloneRate,
      acceptance: r.accepted / Math.max(1, r.proposed),
      tokensPerTargetPass: r.tokens.length / r.steps,
      identicalToTarget: identical,
    })}`,
  );
}
target.model.dispose();
draft.model.dispose();
if (!allIdentical) {
  console.error("FAILED: speculative decoding did not reproduce the target's greedy output");
  process.exit(1);
}
