// Speculative decoding inside the inference engine: batches of greedy requests through the engine with and
// without a draft, in one process on one device, the target and draft checkpoints of bench/train-draft-target.sh
// (any two runs with one tokenizer will do). Every request of a batch gets its own prompt (a common text with a
// different opening), all are submitted at once, and the time runs from submit to the last result, so the number
// is the engine's aggregate throughput, prefill included.
//
// Each batch size runs `repeats` rounds; a round runs the target alone, then the draft with every k, back to back,
// so each speed-up compares runs a few seconds apart (a shared machine's load drifts slower than that). Every run
// must give exactly the target-alone tokens of its round: the bench exits 1 naming the first request that differs.
// Prints one RESULT line per run: tokens/s (aggregate), speed-up over the same round's target alone in wall time
// and in CPU seconds per token (which moves less with a shared machine's load), acceptance rate (accepted /
// proposed), tokens per sequence per step, the share of the steps whose target forward replayed a captured graph
// (src/inference/speculative-graphs.ts: greedy decode steps on CUDA), and the machine's state: load average and,
// on the CPU, the share of the engine's threads' time this process got (near 1 on an idle machine).
//   node dist/bench/speculative-engine.js runs/speculative/target runs/speculative/draft \
//     [k,k,…] [batches] [tokens] [device] [repeats]
// Defaults: k = 2,4; batches 1,8,32; 256 tokens per request; device cuda (bfloat16 weights; float32 on the CPU);
// 1 round.
import { loadavg } from 'node:os';
import '../src/engine/index.js';
import { getEngine } from '../src/engine/registry.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { loadDraftModel, loadModelForInference, type LoadedModel } from '../src/inference/load.js';
import { unwrapAndromeda } from '../src/train/andromeda-adapter.js';
import { InferenceEngine } from '../src/inference/engine.js';

const usage = 'usage: speculative-engine.js <target run> <draft run> [k,k,…] [batches] [tokens] [device] [repeats]';
const [targetDir, draftDir, kList = '2,4', batchList = '1,8,32', tokenArg = '256', device = 'cuda', repeatArg = '1'] =
  process.argv.slice(2);
if (!targetDir || !draftDir) {
  console.error(usage);
  process.exit(2);
}
function positiveIntegers(text: string, what: string): number[] {
  const values = text.split(',').map(Number);
  if (values.some((v) => !Number.isInteger(v) || v < 1)) {
    console.error(`${what} '${text}' must be positive integers separated by commas\n${usage}`);
    process.exit(2);
  }
  return values;
}
const ks = positiveIntegers(kList, 'k');
const batches = positiveIntegers(batchList, 'batches');
const [maxTokens] = positiveIntegers(tokenArg, 'tokens') as [number];
const [repeats] = positiveIntegers(repeatArg, 'repeats') as [number];
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

const engineOfDevice = getEngine(device);
const threads = device === 'cpu' ? (engineOfDevice as CpuEngine).threads() : null;
const target = await loadModelForInference(targetDir, device);
const draft = await loadDraftModel(draftDir, target, device, undefined, 'draft');
const parameters = { target: prepare(target), draft: prepare(draft) };
console.error(
  `target ${parameters.target.toLocaleString()} parameters, draft ${parameters.draft.toLocaleString()}; ` +
    `${maxTokens} tokens per request; ${device}${threads ? `, ${threads} threads` : ''}; ${repeats} round(s)`,
);

interface Run {
  tokens: number[][];
  seconds: number;
  steps: number;
  proposed: number;
  accepted: number;
  /** Target forwards replayed as captured graphs. */
  graphVerifications: number;
  /** Load average (1 minute) at the start of the timed part. */
  load: number;
  /** CPU seconds of this process over wall seconds × the engine's threads (CPU only). */
  cpuShare: number | null;
  /** CPU seconds of this process in the timed part (user + system). */
  cpuSeconds: number;
}

async function run(batch: number, k: number | null): Promise<Run> {
  const engine = new InferenceEngine(target.model, target.tokenizer, {
    maxBatch: Math.max(batch, 1),
    // The pool these runs need, twice over (the warm-up's prompt blocks stay cached), rather than a default
    // 1 GiB that the CPU engine would zero for every engine the bench builds.
    numBlocks: 2 * batch * Math.ceil((2 * TEXT.length + maxTokens + Math.max(...ks)) / 32),
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
    engineOfDevice.synchronize();
    const load = loadavg()[0]!;
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    const results = await Promise.all(prompts.map((p) => engine.submit(p, params).result));
    engineOfDevice.synchronize();
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const stats = engine.stats();
    for (const r of results) if (r.error) throw r.error;
    return {
      tokens: results.map((r) => r.tokenIds),
      seconds,
      steps: stats.steps - warm.steps,
      proposed: (stats.speculative?.proposed ?? 0) - (warm.speculative?.proposed ?? 0),
      accepted: (stats.speculative?.accepted ?? 0) - (warm.speculative?.accepted ?? 0),
      graphVerifications: (stats.speculative?.graphVerifications ?? 0) - (warm.speculative?.graphVerifications ?? 0),
      load,
      cpuShare: threads ? (cpu.user + cpu.system) / 1e6 / (seconds * threads) : null,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
  } finally {
    await engine.close();
  }
}

const generated = (r: Run): number => r.tokens.reduce((n, t) => n + t.length, 0);
const machine = (r: Run): { loadAverage: number; cpuShare?: number } => ({
  loadAverage: Number(r.load.toFixed(2)),
  ...(r.cpuShare === null ? {} : { cpuShare: Number(r.cpuShare.toFixed(3)) }),
});

let mismatches = 0;
for (const batch of batches) {
  for (let round = 1; round <= repeats; round++) {
    const plain = await run(batch, null);
    const plainRate = generated(plain) / plain.seconds;
    console.log(
      `RESULT ${JSON.stringify({
        bench: 'speculative-engine',
        batch,
        round,
        mode: 'alone',
        tokensPerSecond: plainRate,
        tokensPerSequenceStep: generated(plain) / batch / Math.max(1, plain.steps),
        ...machine(plain),
      })}`,
    );
    for (const k of ks) {
      const spec = await run(batch, k);
      const differing = spec.tokens.findIndex((t, i) => t.join() !== plain.tokens[i]!.join());
      if (differing >= 0) {
        mismatches++;
        const a = plain.tokens[differing]!,
          b = spec.tokens[differing]!;
        const at = a.findIndex((t, i) => t !== b[i]);
        console.error(
          `MISMATCH batch ${batch} k ${k} round ${round}: request ${differing} differs from the target alone ` +
            `at token ${at < 0 ? Math.min(a.length, b.length) : at} (target ${a[at]}, with draft ${b[at]}; ` +
            `lengths ${a.length} and ${b.length})`,
        );
      }
      const rate = generated(spec) / spec.seconds;
      console.log(
        `RESULT ${JSON.stringify({
          bench: 'speculative-engine',
          batch,
          round,
          k,
          tokensPerSecond: rate,
          speedup: rate / plainRate,
          // Work per token rather than time: less sensitive to what else the machine runs.
          cpuSpeedup: plain.cpuSeconds / generated(plain) / (spec.cpuSeconds / generated(spec)),
          acceptance: spec.accepted / Math.max(1, spec.proposed),
          tokensPerSequenceStep: generated(spec) / batch / Math.max(1, spec.steps),
          graphVerifiedSteps: spec.graphVerifications / Math.max(1, spec.steps),
          identicalToTarget: `${spec.tokens.filter((t, i) => t.join() === plain.tokens[i]!.join()).length}/${batch}`,
          ...machine(spec),
        })}`,
      );
    }
  }
}
target.model.dispose();
draft.model.dispose();
if (mismatches > 0) {
  console.error(`FAILED: ${mismatches} run(s) with a draft did not reproduce the target's greedy output`);
  process.exit(1);
}
