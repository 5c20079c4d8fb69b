// What one speculative step costs on a device, piece by piece: the target's paged forward over n = 1 .. k + 1
// rows of one sequence (what a verification of k proposals costs against one plain decode step), and the
// draft's one-row forward (what each proposal costs). Decoding pays off when k + 1 rows cost little more than one
// and the draft's row costs little beside it: the speed-up of a step that yields t tokens on average is
// t · target(1) / (target(k + 1) + k · draft(1)). Both models decode a context of `context` positions (the
// prompt length a bench reaches halfway), median of `repeats` timed forwards each, after a warm-up.
//   node dist/bench/speculative-step-costs.js <target run> <draft run> [maxRows] [context] [repeats] [device]
// Defaults: maxRows 7; context 160; 40 repeats; device cpu.
import { loadavg } from 'node:os';
import '../src/engine/index.js';
import { getEngine } from '../src/engine/registry.js';
import { loadModelForInference } from '../src/inference/load.js';
import { unwrapAndromeda } from '../src/train/andromeda-adapter.js';
import type { Andromeda } from '../src/model/andromeda.js';
import { buildPagedStep } from '../src/model/paged-step.js';

const usage = 'usage: speculative-step-costs.js <target run> <draft run> [maxRows] [context] [repeats] [device]';
const [targetDir, draftDir, rowsArg = '7', contextArg = '160', repeatArg = '40', device = 'cpu'] =
  process.argv.slice(2);
if (!targetDir || !draftDir) {
  console.error(usage);
  process.exit(2);
}
const [maxRows, context, repeats] = [rowsArg, contextArg, repeatArg].map(Number) as [number, number, number];
for (const [name, value] of [
  ['maxRows', maxRows],
  ['context', context],
  ['repeats', repeats],
] as const)
  if (!Number.isInteger(value) || value < 1) {
    console.error(`${name} must be a positive integer, got ${value}\n${usage}`);
    process.exit(2);
  }

async function load(dir: string): Promise<Andromeda> {
  const loaded = await loadModelForInference(dir, device);
  const model = unwrapAndromeda(loaded.model);
  if (!model) throw new Error(`${dir}: not an Andromeda checkpoint`);
  if (device.startsWith('cuda')) model.to('bfloat16');
  model.eval();
  return model;
}

/** Median milliseconds of a paged forward over `rows` new positions after `context` cached ones. */
function forwardMs(model: Andromeda, rows: number): number {
  const blockSize = 32;
  const cache = model.createPagedKVCache(Math.ceil((context + rows) / blockSize), { blockSize });
  const table = Int32Array.from({ length: cache.numBlocks }, (_, i) => i);
  const engine = getEngine(device);
  const tokens = (n: number, from: number): number[] => Array.from({ length: n }, (_, i) => (from + i * 7) % 200);
  const run = (feed: number[], cached: number): void => {
    const step = buildPagedStep([{ tokens: feed, cached, blockTable: table }], {
      blockSize,
      device: model.device,
      logits: 'all',
    });
    const logits = model.forwardPaged(step, cache);
    logits.toArray();
    logits.dispose();
    step.dispose();
  };
  try {
    run(tokens(context, 0), 0);
    const times: number[] = [];
    for (let r = 0; r < repeats + 2; r++) {
      engine.synchronize();
      const start = performance.now();
      run(tokens(rows, r), context);
      engine.synchronize();
      if (r >= 2) times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  } finally {
    cache.dispose();
  }
}

const target = await load(targetDir);
const draft = await load(draftDir);
const loadAverage = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const count = (model: Andromeda): string => model.parameterCount().toLocaleString();
console.log(
  `# target ${count(target)} parameters, draft ${count(draft)}; ${device}; context ${context}; ` +
    `median of ${repeats}; load average before ${loadAverage()}`,
);
const draftRow = forwardMs(draft, 1);
const targetRows = Array.from({ length: maxRows }, (_, i) => forwardMs(target, i + 1));
console.log(`RESULT ${JSON.stringify({ bench: 'speculative-step-costs', model: 'draft', rows: 1, ms: draftRow })}`);
targetRows.forEach((ms, i) =>
  console.log(
    `RESULT ${JSON.stringify({
      bench: 'speculative-step-costs',
      model: 'target',
      rows: i + 1,
      ms,
      overOneRow: ms / targetRows[0]!,
    })}`,
  ),
);
console.log(
  `# load average after ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
target.dispose();
draft.dispose();
