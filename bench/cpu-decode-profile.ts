// Where a CPU decode step of a Hugging Face folder spends its time: every CPU engine method timed in place
// (wall time, calls) over batch-1 greedy decoding of 128-token prompts, the engine's total beside the step's.
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-decode-profile.js DIR [BATCH]
import { getEngine } from '../src/engine/index.js';
import { loadModelForInference } from '../src/inference/load.js';
import { InferenceEngine } from '../src/inference/engine.js';

const [dir, batchArg = '1'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: cpu-decode-profile.js DIR [BATCH]');
  process.exit(2);
}
const batch = Number(batchArg);
const PROMPT_TOKENS = 128,
  NEW = 65;
const cpu = getEngine('cpu') as unknown as Record<string, unknown>;
const totals = new Map<string, { ms: number; calls: number }>();
let depth = 0;
for (let proto = Object.getPrototypeOf(cpu); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto))
  for (const name of Object.getOwnPropertyNames(proto)) {
    const original = cpu[name];
    if (name === 'constructor' || typeof original !== 'function' || Object.hasOwn(cpu, name)) continue;
    cpu[name] = function (this: unknown, ...args: unknown[]) {
      const start = performance.now();
      depth++;
      try {
        return (original as (...a: unknown[]) => unknown).apply(this, args);
      } finally {
        depth--;
        if (depth === 0) {
          const entry = totals.get(name) ?? { ms: 0, calls: 0 };
          entry.ms += performance.now() - start;
          entry.calls++;
          totals.set(name, entry);
        }
      }
    };
  }

const loaded = await loadModelForInference(dir, 'cpu');
const engine = new InferenceEngine(loaded.model, loaded.tokenizer, {
  numBlocks: batch * 8,
  maxBatch: batch,
  tokenBudget: Math.max(512, batch * PROMPT_TOKENS),
});
const rows = Array.from({ length: batch }, (_, row) =>
  Int32Array.from({ length: PROMPT_TOKENS }, (_, i) => (1 + 97 * i + 1009 * row) % loaded.model.vocabSize),
);
let start = 0,
  end = 0;
await Promise.all(
  rows.map(async (prompt) => {
    let n = 0;
    for await (const _ of engine.submit(prompt, { temperature: 0, maxTokens: NEW, ignoreEos: true })) {
      if (n++ === 0) {
        start = performance.now();
        totals.clear();
      }
      end = performance.now();
    }
  }),
);
const steps = NEW - 1;
const stepMs = (end - start) / steps;
let engineMs = 0;
for (const v of totals.values()) engineMs += v.ms;
console.log(
  `batch ${batch}: ${stepMs.toFixed(2)} ms per decode step, engine calls ${(engineMs / steps).toFixed(2)} ms`,
);
for (const [name, v] of [...totals].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) {
  const ms = (v.ms / steps).toFixed(3).padStart(8);
  console.log(`${name.padEnd(28)} ${ms} ms/step ${String(v.calls / steps).padStart(6)} calls/step`);
}
await engine.close();
loaded.model.dispose();
