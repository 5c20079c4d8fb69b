import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { getEngine } from '../../src/engine/index.js';
import { Andromeda } from '../../src/model/andromeda.js';
import type { AndromedaConfigInput } from '../../src/model/config.js';
import { presetInput } from '../../src/model/presets.js';
import { filteredDistribution } from '../../src/inference/sampling.js';
import { speculativeGenerate } from '../../src/inference/speculative.js';

const cpu = getEngine('cpu');

function lastLogits(model: Andromeda, tokens: readonly number[]): Float64Array {
  return tidy(() =>
    noGrad(() => {
      const ids = Tensor.fromArray(Int32Array.from(tokens), [1, tokens.length], 'int32');
      return Float64Array.from(model.forward(ids, { logits: 'last' }).toArray());
    }),
  );
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

function greedyAlone(model: Andromeda, prompt: readonly number[], steps: number): number[] {
  const tokens = [...prompt];
  for (let s = 0; s < steps; s++) tokens.push(argmax(lastLogits(model, tokens)));
  return tokens.slice(prompt.length);
}

const tiny = presetInput('tiny');
/** Weight noise of the similar draft: enough that it is sometimes rejected, little enough that it is often not. */
const NEAR_COPY_NOISE = 0.02;

/** The model of `config` and `seed` with noise on every weight: a draft that agrees with it often, not always. */
function nearCopy(config: AndromedaConfigInput, seed: number, noise: number): Andromeda {
  const model = new Andromeda(config, { seed });
  let s = seed + 1;
  const uniform = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const noisy = new Map<string, Tensor>();
  for (const [name, p] of model.namedParameters())
    noisy.set(
      name,
      Tensor.fromArray(
        Float64Array.from(p.toArray(), (x) => x + noise * uniform()),
        p.shape,
        p.dtype,
      ),
    );
  model.loadStateDict(noisy);
  for (const t of noisy.values()) t.dispose();
  return model;
}

for (const [name, targetConfig, draftConfig] of [
  ['tiny target, a shallower draft', tiny, { ...tiny, depth: 1, dim: 64, heads: 2 }],
  ['token shift 2 and qk-norm target, shift 1 draft', { ...tiny, shiftTokens: 2, qkNorm: true }, tiny],
] as [string, AndromedaConfigInput, AndromedaConfigInput][]) {
  test(`speculative greedy = the target alone, 64 tokens, k = 1, 3, 5, drafts rejected and accepted — ${name}`, () => {
    const target = new Andromeda(targetConfig, { seed: 1 });
    const draft = new Andromeda(draftConfig, { seed: 2 });
    const similar = nearCopy(targetConfig, 1, NEAR_COPY_NOISE);
    const prompt = [10, 200, 33, 4, 87];
    const steps = 64;
    const expected = greedyAlone(target, prompt, steps);
    const before = cpu.memoryStats().allocated;
    for (const k of [1, 3, 5]) {
      for (const [proposer, label] of [
        [draft, 'a different draft'],
        [similar, 'a noisy copy of the target'],
        [target, 'the target as its own draft'],
      ] as const) {
        const out = speculativeGenerate(target, proposer, prompt, {
          draftTokens: k,
          maxTokens: steps,
          temperature: 0,
          blockSize: 8,
        });
        assert.deepEqual(Array.from(out.tokens), expected, `k = ${k}, ${label}`);
        assert.equal(out.finishReason, 'length');
        if (proposer === target) assert.equal(out.accepted, out.proposed, 'the target always accepts its own tokens');
        if (proposer === similar)
          assert.ok(out.accepted > 0 && out.accepted < out.proposed, `k = ${k}: ${out.accepted} of ${out.proposed}`);
        // Fewer verification passes than tokens whenever anything was accepted.
        assert.equal(out.steps + out.accepted, steps, `k = ${k}, ${label}: every step yields accepted + 1 tokens`);
      }
    }
    assert.equal(cpu.memoryStats().allocated, before, 'tensors leaked');
    for (const m of [target, draft, similar]) m.dispose();
  });
}

test('speculative decoding stops after a stop id and never exceeds maxTokens', () => {
  const target = new Andromeda(tiny, { seed: 1 });
  const prompt = [1, 2, 3];
  const expected = greedyAlone(target, prompt, 20);
  const stop = expected[6]!;
  const out = speculativeGenerate(target, target, prompt, {
    draftTokens: 4,
    maxTokens: 20,
    temperature: 0,
    stopIds: [stop],
  });
  assert.deepEqual(Array.from(out.tokens), expected.slice(0, expected.indexOf(stop) + 1));
  assert.equal(out.finishReason, 'stop');
  const short = speculativeGenerate(target, target, prompt, { draftTokens: 4, maxTokens: 3, temperature: 0 });
  assert.deepEqual(Array.from(short.tokens), expected.slice(0, 3));
  assert.throws(
    () => speculativeGenerate(target, target, [1, 999], { draftTokens: 2, maxTokens: 2 }),
    /prompt token 1 is 999/,
  );
  assert.throws(() => speculativeGenerate(target, target, [1], { draftTokens: 0, maxTokens: 2 }), /draftTokens 0/);
  target.dispose();
});

/** Pearson's chi-square statistic of counts against expected probabilities (bins with expectation > 0). */
function chiSquare(counts: number[], probs: number[], total: number): number {
  let x = 0;
  probs.forEach((p, i) => {
    if (p > 0) x += (counts[i]! - total * p) ** 2 / (total * p);
  });
  return x;
}

test('speculative sampling keeps the target distribution (chi-square over seeds on a tiny vocabulary)', () => {
  const vocab = 6;
  const config: AndromedaConfigInput = {
    vocabSize: vocab,
    dim: 32,
    depth: 1,
    heads: 2,
    headDim: 32,
    shiftTokens: 1,
    rotary: true,
  };
  const target = new Andromeda(config, { seed: 5 });
  const draft = new Andromeda(config, { seed: 6 });
  const sampling = { temperature: 1 };
  const prompt = [1, 4];
  const probsOf = (model: Andromeda, tokens: number[]): number[] => {
    const { ids, probs } = filteredDistribution(lastLogits(model, tokens), sampling);
    const dense = new Array<number>(vocab).fill(0);
    ids.forEach((id, r) => (dense[id] = probs[r]!));
    return dense;
  };
  // Exact joint distributions of the first two tokens under the target and under the draft.
  const joint = (model: Andromeda): number[] => {
    const first = probsOf(model, prompt);
    return first.flatMap((p1, a) => probsOf(model, [...prompt, a]).map((p2) => p1 * p2));
  };
  const targetJoint = joint(target),
    draftJoint = joint(draft);
  const runs = 1000;
  const counts = new Array<number>(vocab * vocab).fill(0);
  let proposed = 0,
    accepted = 0;
  for (let seed = 0; seed < runs; seed++) {
    const out = speculativeGenerate(target, draft, prompt, { ...sampling, draftTokens: 3, maxTokens: 2, seed });
    counts[out.tokens[0]! * vocab + out.tokens[1]!]!++;
    proposed += out.proposed;
    accepted += out.accepted;
  }
  assert.ok(accepted > 0 && accepted < proposed, `both outcomes exercised: ${accepted} of ${proposed} accepted`);
  // 35 degrees of freedom: P(χ² > 66.6) = 0.001.
  const againstTarget = chiSquare(counts, targetJoint, runs);
  assert.ok(againstTarget < 66.6, `χ² against the target's distribution ${againstTarget.toFixed(1)}`);
  // The test has the power to see a wrong distribution: the draft's is far off.
  const againstDraft = chiSquare(counts, draftJoint, runs);
  assert.ok(againstDraft > 66.6, `χ² against the draft's distribution ${againstDraft.toFixed(1)}`);
  target.dispose();
  draft.dispose();
});
