// What one speculative step costs on a device, piece by piece: the target's paged forward over n = 1 .. k + 1
// rows of one sequence (what a verification of k proposals costs against one plain decode step), and the
// draft's one-row forward (what each proposal costs). Decoding pays off when k + 1 rows cost little more than one
// and the draft's row costs little beside it: the speed-up of a step that yields t tokens on average is
// t · target(1) / (target(k + 1) + k · draft(1)). Both models decode a context of `context` positions (the
// prompt length a bench reaches halfway), median of `repeats` timed forwards each after two untimed rounds;
// the cases take turns, one forward each per round.
//   node dist/bench/speculative-step-costs.js <target run> <draft run> [maxRows] [context] [repeats] [device]
// Defaults: maxRows 7; context 160; 40 repeats; device cpu.
import { loadavg } from 'node:os';
import '../src/engine/index.js';
import { getEngine } from '../src/engine/registry.js';
import { loadModelForInference } from '../src/inference/load.js';
import { unwrapAndromeda } from '../src/train/andromeda-adapter.js';
import type { Andromeda } from '../src/model/andromeda.js';
import { buildPagedStep } from '../src/model/paged-step.js';
import type { PagedKVCache } from '../src/model/paged-kv-cache.js';

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

/** One model with `context` positions in its cache, ready to time forwards over new positions after them. */
class TimedForward {
  private readonly blockSize = 32;
  private readonly cache: PagedKVCache;
  private readonly table: Int32Array;
  readonly times: number[] = [];

  constructor(
    private readonly model: Andromeda,
    readonly rows: number,
  ) {
    this.cache = model.createPagedKVCache(Math.ceil((context + rows) / this.blockSize), { blockSize: this.blockSize });
    this.table = Int32Array.from({ length: this.cache.numBlocks }, (_, i) => i);
    this.run(context, 0, 0);
  }

  /** Times a forward over `rows` positions after the context (the same positions each time, rewritten). */
  time(seed: number): void {
    const engine = getEngine(device);
    engine.synchronize();
    const start = performance.now();
    this.run(this.rows, context, seed);
    engine.synchronize();
    this.times.push(performance.now() - start);
  }

  median(): number {
    const sorted = [...this.times].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  }

  dispose(): void {
    this.cache.dispose();
  }

  private run(rows: number, cached: number, seed: number): void {
    const tokens = Array.from({ length: rows }, (_, i) => (seed + i * 7) % 200);
    const step = buildPagedStep([{ tokens, cached, blockTable: this.table }], {
      blockSize: this.blockSize,
      device: this.model.device,
      logits: 'all',
    });
    const logits = this.model.forwardPaged(step, this.cache);
    logits.toArray();
    logits.dispose();
    step.dispose();
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
// Every case once per round, round after round, so that a change in the machine's load falls on all of them.
const cases = [draft, ...Array<Andromeda>(maxRows).fill(target)].map((m, i) => new TimedForward(m, Math.max(1, i)));
for (let round = 0; round < repeats + 2; round++) for (const c of cases) c.time(round);
for (const c of cases) c.times.splice(0, 2);
const [draftRow, ...targetRows] = cases as [TimedForward, ...TimedForward[]];
const oneRow = targetRows[0]!.median();
const result = (model: string, c: TimedForward, extra: object = {}): string =>
  `RESULT ${JSON.stringify({ bench: 'speculative-step-costs', model, rows: c.rows, ms: c.median(), ...extra })}`;
console.log(result('draft', draftRow));
for (const c of targetRows) console.log(result('target', c, { overOneRow: c.median() / oneRow }));
for (const c of cases) c.dispose();
console.log(
  `# load average after ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
target.dispose();
draft.dispose();
