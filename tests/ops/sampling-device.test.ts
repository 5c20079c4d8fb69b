// Device sampling (src/ops/sampling.ts) on the CPU engine against a float64 host reference built from the
// documented generator and formulas (tests/helpers/sampling-reference.ts): greedy picks, seeded draws, the
// filters' supports and frequencies (chi-square), penalties, log-probabilities, counters, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/index.js';
import { Generator } from '../../src/tensor/random.js';
import { argmax } from '../../src/inference/sampling.js';
import {
  sampleTokens,
  samplingParams,
  samplingSeeds,
  type DeviceSamplingOptions,
  type SampledTokens,
} from '../../src/ops/sampling.js';
import {
  referenceDraw,
  referenceFiltered,
  referenceLogprobs,
  referenceScores,
  uniformFromCounter,
} from '../helpers/sampling-reference.js';

interface Batch {
  logits: Float64Array;
  rows: number;
  vocab: number;
  options: DeviceSamplingOptions[];
  seeds: number[];
  steps?: Int32Array;
  counts?: Int32Array;
}

interface Drawn {
  ids: Int32Array;
  logprobs: Float32Array;
  topIds: Int32Array | null;
  topLogprobs: Float32Array | null;
  steps: Int32Array;
  counts: Int32Array | null;
}

/** One sampleTokens call on the CPU engine; returns what it wrote, host-side. */
function draw(b: Batch, dtype: 'float32' | 'bfloat16' = 'float32', topLogprobs = 0, calls = 1): Drawn[] {
  const logits = Tensor.fromArray(b.logits, [b.rows, b.vocab], dtype);
  const params = samplingParams(b.options);
  const seeds = samplingSeeds(b.seeds);
  const steps = Tensor.fromArray(b.steps ?? new Int32Array(b.rows), [b.rows], 'int32');
  const counts = b.counts ? Tensor.fromArray(b.counts, [b.rows, b.vocab], 'int32') : null;
  const out: Drawn[] = [];
  for (let c = 0; c < calls; c++) {
    const r: SampledTokens = sampleTokens(logits, { params, seeds, steps, counts, logprobs: true, topLogprobs });
    out.push({
      ids: r.ids.toArray() as Int32Array,
      logprobs: r.logprobs!.toArray() as Float32Array,
      topIds: r.topIds ? (r.topIds.toArray() as Int32Array) : null,
      topLogprobs: r.topLogprobs ? (r.topLogprobs.toArray() as Float32Array) : null,
      steps: steps.toArray() as Int32Array,
      counts: counts ? (counts.toArray() as Int32Array) : null,
    });
    for (const t of [r.ids, r.logprobs, r.topIds, r.topLogprobs]) t?.dispose();
  }
  for (const t of [logits, params, seeds, steps, counts]) t?.dispose();
  return out;
}

function randomLogits(gen: Generator, count: number, scale = 3): Float64Array {
  return Float64Array.from({ length: count }, () => scale * gen.normal());
}

const row = (v: Float64Array, r: number, vocab: number) => v.subarray(r * vocab, (r + 1) * vocab);

test('greedy rows pick the argmax, the first index on ties, in float32 and bfloat16', () => {
  const gen = new Generator(1);
  const rows = 4,
    vocab = 1000;
  const logits = randomLogits(gen, rows * vocab);
  // Row 2: a tie for the best value at ids 17 and 400; row 3: all equal.
  logits[2 * vocab + 17] = 50;
  logits[2 * vocab + 400] = 50;
  row(logits, 3, vocab).fill(-1.5);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const [d] = draw(
      { logits, rows, vocab, options: Array(rows).fill({ temperature: 0 }), seeds: [1, 2, 3, 4] },
      dtype,
    );
    const rounded = Float64Array.from(Tensor.fromArray(logits, [rows * vocab], dtype).toArray());
    for (let r = 0; r < rows; r++) assert.equal(d!.ids[r], argmax(row(rounded, r, vocab)), `${dtype} row ${r}`);
    assert.equal(d!.ids[2], 17);
    assert.equal(d!.ids[3], 0);
  }
});

test('seeded draws equal the float64 reference with the same counter-based uniform', () => {
  const gen = new Generator(2);
  const vocab = 300;
  const settings: DeviceSamplingOptions[] = [
    { temperature: 1 },
    { temperature: 0.7, topK: 40 },
    { temperature: 1.3, topP: 0.9 },
    { temperature: 1, minP: 0.05 },
    { temperature: 0.9, topK: 50, topP: 0.8, minP: 0.02 },
    { temperature: 1, repetitionPenalty: 1.3, frequencyPenalty: 0.2, presencePenalty: 0.5 },
  ];
  const rows = settings.length;
  const logits = randomLogits(gen, rows * vocab, 2);
  const counts = Int32Array.from({ length: rows * vocab }, () => (gen.uniform() < 0.1 ? 1 + gen.int(3) : 0));
  const seeds = settings.map((_, r) => 1000 + 7919 * r + 2 ** 40 * r);
  const calls = 40;
  // Counts change as tokens are drawn: replay that on the host as the reference goes.
  const hostCounts = Int32Array.from(counts);
  const results = draw({ logits, rows, vocab, options: settings, seeds, counts }, 'float32', 0, calls);
  let distinct = 0;
  for (let c = 0; c < calls; c++) {
    for (let r = 0; r < rows; r++) {
      const scores = referenceScores(
        row(logits, r, vocab),
        hostCounts.subarray(r * vocab, (r + 1) * vocab),
        settings[r]!,
      );
      const want = referenceDraw(scores, settings[r]!, uniformFromCounter(seeds[r]!, c));
      const got = results[c]!.ids[r]!;
      assert.equal(got, want, `call ${c}, row ${r} (${JSON.stringify(settings[r])})`);
      const lp = referenceLogprobs(scores)[got]!;
      assert.ok(
        Math.abs(results[c]!.logprobs[r]! - lp) < 1e-5,
        `logprob call ${c} row ${r}: ${results[c]!.logprobs[r]} vs ${lp}`,
      );
      hostCounts[r * vocab + got]!++;
      if (c > 0 && got !== results[c - 1]!.ids[r]) distinct++;
    }
    assert.deepEqual(Array.from(results[c]!.steps), Array(rows).fill(c + 1), 'every row advanced its step');
  }
  assert.deepEqual(Array.from(results[calls - 1]!.counts!), Array.from(hostCounts), 'counts gained the drawn tokens');
  assert.ok(distinct > calls, `the steps draw fresh numbers (${distinct} changes)`);
});

test('wide nuclei (thousands of tokens, beyond one sorted batch) and large top-k follow the reference', () => {
  const gen = new Generator(6);
  const vocab = 20000;
  const settings: DeviceSamplingOptions[] = [
    { temperature: 1, topP: 0.95 },
    { temperature: 2, topP: 0.99 },
    { temperature: 1.5, topK: 5000, topP: 0.9 },
    { temperature: 1, topK: 3000, minP: 0.001 },
  ];
  const rows = settings.length;
  const logits = randomLogits(gen, rows * vocab, 0.5);
  const seeds = settings.map((_, r) => 555 + r);
  const calls = 8;
  const results = draw({ logits, rows, vocab, options: settings, seeds }, 'float32', 0, calls);
  for (let r = 0; r < rows; r++) {
    const scores = referenceScores(row(logits, r, vocab), null, settings[r]!);
    assert.ok(referenceFiltered(scores, settings[r]!).size > 2048, `row ${r} keeps more than two sorted batches`);
    for (let c = 0; c < calls; c++) {
      const want = referenceDraw(scores, settings[r]!, uniformFromCounter(seeds[r]!, c));
      assert.equal(results[c]!.ids[r], want, `call ${c}, row ${r} (${JSON.stringify(settings[r])})`);
    }
  }
});

test('the same seed and step give the same token; another step or seed gives others', () => {
  const gen = new Generator(3);
  const vocab = 50,
    rows = 64;
  const base = randomLogits(gen, vocab, 0.5);
  const logits = new Float64Array(rows * vocab);
  for (let r = 0; r < rows; r++) logits.set(base, r * vocab);
  const options = Array(rows).fill({ temperature: 1 });
  const same = draw({ logits, rows, vocab, options, seeds: Array(rows).fill(77) })[0]!.ids;
  assert.equal(new Set(same).size, 1, 'one seed, one step: one token');
  const steps = Int32Array.from({ length: rows }, (_, r) => r);
  const bySteps = draw({ logits, rows, vocab, options, seeds: Array(rows).fill(77), steps })[0]!.ids;
  const bySeeds = draw({ logits, rows, vocab, options, seeds: Array.from({ length: rows }, (_, r) => r) })[0]!.ids;
  assert.ok(new Set(bySteps).size > 10 && new Set(bySeeds).size > 10, 'steps and seeds vary the draws');
  assert.equal(bySteps[0], same[0], 'step 0 of seed 77 is the same draw');
});

/** Pearson's chi-square of observed counts against expected probabilities (cells with p > 0). */
function chiSquare(observed: Map<number, number>, expected: Map<number, number>, n: number): number {
  let x2 = 0;
  for (const [id, p] of expected) x2 += ((observed.get(id) ?? 0) - n * p) ** 2 / (n * p);
  return x2;
}
// Upper 0.1% points of chi-square with df degrees of freedom.
const CHI2_999: Record<number, number> = { 1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32 };

test('top-k, top-p and min-p draw only from the filtered distribution, with its frequencies (chi-square)', () => {
  const vocab = 8;
  const base = Float64Array.of(1.2, -0.3, 2.0, 0.4, 2.0, -1.0, 0.9, 0.1);
  const n = 6000;
  const logits = new Float64Array(n * vocab);
  for (let r = 0; r < n; r++) logits.set(base, r * vocab);
  const seeds = Array.from({ length: n }, (_, r) => 31 * r + 5);
  for (const o of [
    { temperature: 1 },
    { temperature: 1, topK: 3 },
    { temperature: 0.8, topP: 0.7 },
    { temperature: 1, minP: 0.3 },
    { temperature: 1.5, topK: 5, topP: 0.9, minP: 0.2 },
  ] as DeviceSamplingOptions[]) {
    const expected = referenceFiltered(referenceScores(base, null, o), o);
    const ids = draw({ logits, rows: n, vocab, options: Array(n).fill(o), seeds })[0]!.ids;
    const observed = new Map<number, number>();
    for (const id of ids) {
      assert.ok(expected.has(id), `${JSON.stringify(o)} drew the excluded token ${id}`);
      observed.set(id, (observed.get(id) ?? 0) + 1);
    }
    const df = expected.size - 1;
    const x2 = chiSquare(observed, expected, n);
    if (df > 0) assert.ok(x2 < CHI2_999[df]!, `${JSON.stringify(o)}: chi-square ${x2.toFixed(2)} with ${df} df`);
    else assert.equal(observed.size, 1);
  }
  // The filters do exclude: top-k 3 keeps the ids of 2.0, 2.0 and 1.2; min-p 0.3 drops exp(−1.6) and below.
  assert.deepEqual([...referenceFiltered(referenceScores(base, null, { topK: 3 }), { topK: 3 }).keys()], [2, 4, 0]);
  assert.ok(!referenceFiltered(referenceScores(base, null, { minP: 0.3 }), { minP: 0.3 }).has(3));
});

test('penalties change the scores exactly as the formula; log-probabilities are their log-softmax', () => {
  const vocab = 12;
  const logits = Float64Array.of(3, -2, 0.5, 2.9, -0.25, 1, 0, -4, 2, 2.5, 0.75, -1);
  const counts = Int32Array.of(2, 1, 0, 0, 3, 0, 1, 0, 0, 5, 0, 0);
  const cases: DeviceSamplingOptions[] = [
    { temperature: 0, repetitionPenalty: 1.5 },
    { temperature: 0, frequencyPenalty: 0.4 },
    { temperature: 0, presencePenalty: 1.1 },
    { temperature: 0.5, repetitionPenalty: 1.2, frequencyPenalty: 0.1, presencePenalty: 0.3 },
    { temperature: 2, repetitionPenalty: 0.8 },
  ];
  for (const o of cases) {
    const [d] = draw({ logits, rows: 1, vocab, options: [o], seeds: [9], counts }, 'float32', vocab);
    // By the formula, without the reference's helpers: repetition, then frequency and presence, then temperature.
    const f = Math.fround;
    const expectedScores = Float64Array.from(logits, (z, i) => {
      let s = f(z);
      if (counts[i]! > 0) {
        const r = f(o.repetitionPenalty ?? 1);
        s = f(s > 0 ? s / r : s * r);
        s = f(s - f(o.frequencyPenalty ?? 0) * counts[i]!);
        s = f(s - f(o.presencePenalty ?? 0));
      }
      return o.temperature! > 0 ? f(s / f(o.temperature!)) : s;
    });
    const lp = referenceLogprobs(expectedScores);
    for (let j = 0; j < vocab; j++) {
      const id = d!.topIds![j]!;
      assert.ok(Math.abs(d!.topLogprobs![j]! - lp[id]!) < 1e-6, `${JSON.stringify(o)}: logprob of ${id}`);
      if (j > 0) assert.ok(d!.topLogprobs![j]! <= d!.topLogprobs![j - 1]!, 'top log-probabilities best first');
    }
    assert.deepEqual(new Set(d!.topIds!), new Set(Array.from({ length: vocab }, (_, i) => i)));
    if (o.temperature === 0) assert.equal(d!.ids[0], argmax(expectedScores), `${JSON.stringify(o)}: greedy pick`);
  }
  // Without penalties id 0 (logit 3) wins; a repetition penalty of 1.5 on its two uses hands it to id 3 (2.9).
  assert.equal(draw({ logits, rows: 1, vocab, options: [{ temperature: 0 }], seeds: [1] })[0]!.ids[0], 0);
  assert.equal(
    draw({ logits, rows: 1, vocab, options: [{ temperature: 0, repetitionPenalty: 1.5 }], seeds: [1], counts })[0]!
      .ids[0],
    3,
  );
});

test('top log-probabilities are the n best tokens in order, in bfloat16 too; an all −∞ row gives −1', () => {
  const gen = new Generator(5);
  const vocab = 2000,
    rows = 3;
  const logits = randomLogits(gen, rows * vocab);
  row(logits, 2, vocab).fill(-Infinity);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const rounded = Float64Array.from(Tensor.fromArray(logits, [rows * vocab], dtype).toArray());
    const options = [{ temperature: 0.8, topK: 100 }, { temperature: 0 }, { temperature: 1 }];
    const [d] = draw({ logits, rows, vocab, options, seeds: [1, 2, 3] }, dtype, 20);
    for (let r = 0; r < 2; r++) {
      const scores = referenceScores(row(rounded, r, vocab), null, options[r]!);
      const order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b);
      const lp = referenceLogprobs(scores);
      assert.deepEqual(Array.from(d!.topIds!.subarray(r * 20, r * 20 + 20)), order.slice(0, 20), `${dtype} row ${r}`);
      for (let j = 0; j < 20; j++)
        assert.ok(Math.abs(d!.topLogprobs![r * 20 + j]! - lp[order[j]!]!) < 1e-5, `${dtype} row ${r} top ${j}`);
    }
    assert.equal(d!.ids[2], -1);
    assert.ok(Number.isNaN(d!.logprobs[2]!));
    assert.equal(d!.topIds![40], -1);
  }
});

test('bad arguments are refused with the problem named, before anything runs', () => {
  const logits = Tensor.fromArray(new Float32Array(10), [2, 5]);
  const params = samplingParams([{}, {}]);
  const seeds = samplingSeeds([1, 2]);
  const steps = Tensor.fromArray(new Int32Array(2), [2], 'int32');
  const ok = { params, seeds, steps };
  assert.throws(() => sampleTokens(Tensor.fromArray(new Float32Array(5), [5]), ok), /logits must be \[rows, vocab\]/);
  assert.throws(
    () => sampleTokens(Tensor.fromArray(new Float64Array(10), [2, 5], 'float64'), ok),
    /float32 or bfloat16/,
  );
  assert.throws(() => sampleTokens(logits, { ...ok, topLogprobs: 21 }), /topLogprobs must be an integer from 0 to 5/);
  assert.throws(
    () => sampleTokens(logits, { ...ok, steps: seeds }),
    /steps must be a contiguous int32 tensor of shape \[2\]/,
  );
  assert.throws(() => sampleTokens(logits, { ...ok, params: samplingParams([{}]) }), /params must be/);
  const counts = Tensor.fromArray(new Int32Array(8), [2, 4], 'int32');
  assert.throws(() => sampleTokens(logits, { ...ok, counts }), /counts must be .* \[2, 5\]/);
  assert.throws(() => samplingParams([{ minP: 2 }]), /sampling row 0: min-p must be in \[0, 1\]/);
  assert.throws(() => samplingParams([{}, { repetitionPenalty: 0 }]), /sampling row 1: repetition penalty/);
  assert.throws(() => samplingParams([{ temperature: -1 }]), /temperature/);
  assert.throws(() => samplingParams([{ topP: 0 }]), /top-p/);
  assert.throws(() => samplingSeeds([2 ** 53]), /seed 0 must be an integer in \[0, 2\^53\)/);
  for (const t of [logits, params, seeds, steps, counts]) t.dispose();
});
