import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, filteredDistribution, sampleToken, validateSampling } from '../../src/inference/sampling.js';
import { Generator } from '../../src/tensor/random.js';

const logits = Float32Array.from([1, 3, 2, 0, 3, -1]); // ids 1 and 4 tie for the top

function frequencies(o: Parameters<typeof sampleToken>[1], n = 20000, seed = 1): number[] {
  const g = new Generator(seed);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(logits, o, g)]++;
  return counts.map((c) => c / n);
}

test('greedy (temperature 0) picks the largest logit, the first on ties', () => {
  assert.equal(argmax(logits), 1);
  assert.equal(sampleToken(logits, { temperature: 0 }, new Generator(5)), 1);
  assert.equal(argmax([NaN, -Infinity, -Infinity]), 1);
});

test('temperature 1 samples the softmax; the same seed gives the same draws', () => {
  const z = Array.from(logits).reduce((s, v) => s + Math.exp(v), 0);
  const expected = Array.from(logits).map((v) => Math.exp(v) / z);
  const f = frequencies({ temperature: 1 });
  f.forEach((p, i) => assert.ok(Math.abs(p - expected[i]) < 0.015, `id ${i}: ${p} vs ${expected[i]}`));
  const draw = (seed: number) => {
    const g = new Generator(seed);
    return Array.from({ length: 50 }, () => sampleToken(logits, { temperature: 0.9, topP: 0.9 }, g));
  };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
});

test('temperature sharpens or flattens the distribution exactly', () => {
  const { ids, probs } = filteredDistribution(logits, { temperature: 0.5 });
  const z = Array.from(logits).reduce((s, v) => s + Math.exp(v / 0.5), 0);
  ids.forEach((id, r) => assert.ok(Math.abs(probs[r] - Math.exp(logits[id] / 0.5) / z) < 1e-12));
  assert.deepEqual(Array.from(ids), [1, 4, 2, 0, 3, 5], 'decreasing logit, ties by id');
  const hot = filteredDistribution(logits, { temperature: 100 }).probs;
  assert.ok(Math.max(...hot) - Math.min(...hot) < 0.05, 'high temperature is nearly uniform');
});

test('top-k keeps the k most likely tokens, renormalised', () => {
  const { ids, probs } = filteredDistribution(logits, { topK: 3 });
  assert.deepEqual(Array.from(ids), [1, 4, 2]);
  const z = Math.exp(3) * 2 + Math.exp(2);
  assert.ok(Math.abs(probs[0] - Math.exp(3) / z) < 1e-12);
  assert.ok(Math.abs(probs[2] - Math.exp(2) / z) < 1e-12);
  const f = frequencies({ topK: 2 });
  assert.equal(f[0] + f[2] + f[3] + f[5], 0, 'only the top 2 are ever drawn');
  assert.ok(Math.abs(f[1] - 0.5) < 0.02 && Math.abs(f[4] - 0.5) < 0.02);
});

test('top-p keeps the smallest prefix reaching p', () => {
  const all = filteredDistribution(logits, {});
  // softmax of [3, 3, 2, 1, 0, -1]: 0.3889, 0.3889, 0.1431, 0.0526, 0.0194, 0.0071
  assert.deepEqual(Array.from(filteredDistribution(logits, { topP: 0.5 }).ids), [1, 4]);
  assert.deepEqual(Array.from(filteredDistribution(logits, { topP: 0.777 }).ids), [1, 4]);
  assert.deepEqual(Array.from(filteredDistribution(logits, { topP: 0.778 }).ids), [1, 4, 2]);
  assert.deepEqual(Array.from(filteredDistribution(logits, { topP: 1 }).ids), Array.from(all.ids));
  const both = filteredDistribution(logits, { topK: 4, topP: 0.95 });
  assert.deepEqual(Array.from(both.ids), [1, 4, 2, 0]);
  assert.ok(Math.abs(both.probs.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  const f = frequencies({ topP: 0.5 }, 5000);
  assert.equal(f[0] + f[2] + f[3] + f[5], 0);
});

test('bad sampling settings are refused with clear messages', () => {
  assert.throws(() => validateSampling({ temperature: -1 }), /temperature/);
  assert.throws(() => validateSampling({ topK: 1.5 }), /top-k/);
  assert.throws(() => validateSampling({ topP: 0 }), /top-p must be in \(0, 1\]/);
  assert.throws(() => filteredDistribution([-Infinity, NaN], {}), /no token has a finite logit/);
});
