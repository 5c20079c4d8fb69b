// Device sampling on CUDA against the CPU engine: with the same logits, parameters, seeds and steps both pick the
// same tokens (ids equal) with log-probabilities within 1e-5, at real vocabulary sizes, in float32 and bfloat16,
// over several steps (counts and step counters advanced on the device); and the CUDA picks follow the float64
// host reference (tests/helpers/sampling-reference.ts).
import assert from 'node:assert/strict';
import { Tensor } from '../../src/index.js';
import { Generator } from '../../src/tensor/random.js';
import { sampleTokens, samplingParams, samplingSeeds, type DeviceSamplingOptions } from '../../src/ops/sampling.js';
import { referenceDraw, referenceScores, uniformFromCounter } from '../helpers/sampling-reference.js';
import { gpuTest } from './harness.js';

const SETTINGS: DeviceSamplingOptions[] = [
  { temperature: 0 },
  { temperature: 1 },
  { temperature: 0.7, topK: 50 },
  { temperature: 1, topP: 0.9 },
  { temperature: 0.8, minP: 0.05 },
  { temperature: 1, topK: 1000, topP: 0.95, minP: 0.01 },
  { temperature: 0.6, topP: 0.5 },
  { temperature: 1, repetitionPenalty: 1.3, frequencyPenalty: 0.3, presencePenalty: 0.2 },
  { temperature: 0, repetitionPenalty: 1.5, presencePenalty: 2 },
  { temperature: 1.2, topK: 5 },
];

interface Run {
  ids: Int32Array[];
  logprobs: Float32Array[];
  topIds: Int32Array[];
  topLogprobs: Float32Array[];
  counts: Int32Array;
  steps: Int32Array;
}

function run(
  device: string,
  dtype: 'float32' | 'bfloat16',
  logits: Float64Array,
  counts: Int32Array,
  vocab: number,
  calls: number,
): Run {
  const rows = SETTINGS.length;
  const l = Tensor.fromArray(logits, [rows, vocab], dtype, device);
  const params = samplingParams(SETTINGS, device);
  const seeds = samplingSeeds(
    SETTINGS.map((_, r) => 12345 + r * 2 ** 33),
    device,
  );
  const steps = Tensor.fromArray(new Int32Array(rows), [rows], 'int32', device);
  const c = Tensor.fromArray(counts, [rows, vocab], 'int32', device);
  const out: Run = { ids: [], logprobs: [], topIds: [], topLogprobs: [], counts: counts, steps: new Int32Array() };
  for (let i = 0; i < calls; i++) {
    const r = sampleTokens(l, { params, seeds, steps, counts: c, logprobs: true, topLogprobs: 20 });
    out.ids.push(r.ids.toArray() as Int32Array);
    out.logprobs.push(r.logprobs!.toArray() as Float32Array);
    out.topIds.push(r.topIds!.toArray() as Int32Array);
    out.topLogprobs.push(r.topLogprobs!.toArray() as Float32Array);
    for (const t of [r.ids, r.logprobs!, r.topIds!, r.topLogprobs!]) t.dispose();
  }
  out.counts = c.toArray() as Int32Array;
  out.steps = steps.toArray() as Int32Array;
  for (const t of [l, params, seeds, steps, c]) t.dispose();
  return out;
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i] || (Number.isNaN(a[i]!) && Number.isNaN(b[i]!))) continue; // equal infinities included
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  }
  return worst;
}

for (const vocab of [50432, 151936]) {
  gpuTest(`sampleTokens: CUDA picks the CPU engine's tokens, vocab ${vocab}`, () => {
    const gen = new Generator(vocab);
    const rows = SETTINGS.length;
    // Peaked rows (a few large logits over a broad floor) exercise top-p and min-p the way real models do.
    const logits = Float64Array.from({ length: rows * vocab }, () => 2 * gen.normal());
    for (let k = 0; k < rows * 30; k++) logits[gen.int(rows * vocab)] = 8 + 4 * gen.uniform();
    const counts = Int32Array.from({ length: rows * vocab }, () => (gen.uniform() < 0.01 ? 1 + gen.int(4) : 0));
    const calls = 6;
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const want = run('cpu', dtype, logits, counts, vocab, calls);
      const got = run('cuda', dtype, logits, counts, vocab, calls);
      for (let i = 0; i < calls; i++) {
        assert.deepEqual(Array.from(got.ids[i]!), Array.from(want.ids[i]!), `${dtype} call ${i}: ids`);
        assert.deepEqual(Array.from(got.topIds[i]!), Array.from(want.topIds[i]!), `${dtype} call ${i}: top ids`);
        const lp = maxDifference(got.logprobs[i]!, want.logprobs[i]!);
        const top = maxDifference(got.topLogprobs[i]!, want.topLogprobs[i]!);
        assert.ok(lp <= 1e-5 && top <= 1e-5, `${dtype} call ${i}: logprobs differ by ${lp}, top by ${top}`);
      }
      assert.deepEqual(Array.from(got.steps), Array(rows).fill(calls), `${dtype}: steps advanced`);
      assert.ok(
        got.counts.every((v, i) => v === want.counts[i]),
        `${dtype}: counts advanced alike`,
      );
      // The first call against the float64 reference (float32 logits: the reference reads the same values).
      if (dtype === 'float32') {
        for (let r = 0; r < rows; r++) {
          const o = SETTINGS[r]!;
          const scores = referenceScores(
            logits.subarray(r * vocab, (r + 1) * vocab),
            counts.subarray(r * vocab, (r + 1) * vocab),
            o,
          );
          const seed = 12345 + r * 2 ** 33;
          assert.equal(got.ids[0]![r], referenceDraw(scores, o, uniformFromCounter(seed, 0)), `row ${r} reference`);
        }
      }
    }
  });
}

/** Rows the random logits never produce: no finite score, exact ties (broken by id), an infinite logit. */
const DEGENERATE: { options: DeviceSamplingOptions; logit: (i: number) => number }[] = [
  { options: { temperature: 1 }, logit: () => -Infinity },
  { options: { temperature: 0 }, logit: () => NaN },
  { options: { temperature: 0 }, logit: () => 0 },
  { options: { temperature: 1, topK: 5 }, logit: () => 0 },
  { options: { temperature: 1, topP: 0.5 }, logit: (i) => (i % 3 === 0 ? 1 : -1) },
  { options: { temperature: 0.7 }, logit: (i) => (i === 617 ? Infinity : i % 7) },
  { options: { temperature: 1, minP: 1 }, logit: (i) => (i === 3 || i === 900 ? 5 : 0) },
];

gpuTest('sampleTokens: degenerate rows (no finite score, ties, an infinite logit) as the CPU engine', () => {
  const vocab = 1000,
    rows = DEGENERATE.length,
    calls = 3;
  const logits = Float64Array.from({ length: rows * vocab }, (_, k) =>
    DEGENERATE[Math.floor(k / vocab)]!.logit(k % vocab),
  );
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const results = (['cpu', 'cuda'] as const).map((device) => {
      const l = Tensor.fromArray(logits, [rows, vocab], dtype, device);
      const params = samplingParams(
        DEGENERATE.map((d) => d.options),
        device,
      );
      const seeds = samplingSeeds(
        DEGENERATE.map((_, r) => 99 + r),
        device,
      );
      const steps = Tensor.fromArray(new Int32Array(rows), [rows], 'int32', device);
      const counts = Tensor.fromArray(new Int32Array(rows * vocab), [rows, vocab], 'int32', device);
      const out: { ids: number[]; logprobs: number[]; topIds: number[]; topLogprobs: number[] }[] = [];
      for (let i = 0; i < calls; i++) {
        const r = sampleTokens(l, { params, seeds, steps, counts, logprobs: true, topLogprobs: 20 });
        out.push({
          ids: Array.from(r.ids.toArray()),
          logprobs: Array.from(r.logprobs!.toArray()),
          topIds: Array.from(r.topIds!.toArray()),
          topLogprobs: Array.from(r.topLogprobs!.toArray()),
        });
        for (const t of [r.ids, r.logprobs!, r.topIds!, r.topLogprobs!]) t.dispose();
      }
      const final = { counts: Array.from(counts.toArray()), steps: Array.from(steps.toArray()) };
      for (const t of [l, params, seeds, steps, counts]) t.dispose();
      return { out, final };
    });
    const [want, got] = results as [(typeof results)[0], (typeof results)[0]];
    for (let i = 0; i < calls; i++) {
      assert.deepEqual(got.out[i]!.ids, want.out[i]!.ids, `${dtype} call ${i}: ids`);
      assert.deepEqual(got.out[i]!.topIds, want.out[i]!.topIds, `${dtype} call ${i}: top ids`);
      const lp = maxDifference(Float32Array.from(got.out[i]!.logprobs), Float32Array.from(want.out[i]!.logprobs));
      const top = maxDifference(
        Float32Array.from(got.out[i]!.topLogprobs),
        Float32Array.from(want.out[i]!.topLogprobs),
      );
      assert.ok(lp <= 1e-5 && top <= 1e-5, `${dtype} call ${i}: logprobs differ by ${lp}, top by ${top}`);
    }
    // Rows without a finite score draw nothing (id −1) and leave the counts alone; every row's step advances.
    assert.deepEqual(want.out[0]!.ids.slice(0, 2), [-1, -1], `${dtype}: the CPU engine's rows without a finite score`);
    assert.deepEqual(got.final.steps, Array(rows).fill(calls), `${dtype}: steps advanced`);
    assert.deepEqual(got.final.counts, want.final.counts, `${dtype}: counts advanced alike`);
  }
});
