import '../../src/engine/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { resolveConfig, type AndromedaConfig } from '../../src/model/config.js';
import { rotarySettings, yarnInverseFrequencies } from '../../src/model/rotary.js';
import {
  applyPositionOverrides,
  describePositions,
  validatePositionOverrides,
} from '../../src/eval/position-overrides.js';

const rotaryOnly = resolveConfig({ vocabSize: 30, dim: 32, depth: 2, heads: 2, headDim: 16, rotary: { dim: 16 } });

function logitsAt(model: Andromeda, ids: Int32Array, positions: Int32Array): Float32Array {
  return noGrad(() =>
    tidy(() => model.forward(Tensor.fromArray(ids, [1, ids.length], 'int32'), { positions }).toArray() as Float32Array),
  );
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

function withWeightsOf(source: Andromeda, config: AndromedaConfig): Andromeda {
  const model = new Andromeda(config, { initialize: false });
  model.loadStateDict(source.stateDict());
  return model;
}

test('rotary interpolation factor 2 at positions 2p computes what factor 1 computes at p', () => {
  const plain = new Andromeda(rotaryOnly, { seed: 5 });
  const interpolated = withWeightsOf(plain, applyPositionOverrides(rotaryOnly, { interpolation: 2 }, 64));
  try {
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % 30);
    const p = Int32Array.from({ length: 12 }, (_, i) => 3 * i);
    const twoP = p.map((x) => 2 * x);
    assert.ok(maxDifference(logitsAt(plain, ids, p), logitsAt(interpolated, ids, twoP)) < 1e-4);
    // The same positions are not the same computation: the factor does change what positions mean.
    assert.ok(maxDifference(logitsAt(plain, ids, p), logitsAt(interpolated, ids, p)) > 1e-3);
  } finally {
    plain.dispose();
    interpolated.dispose();
  }
});

test('YaRN, NTK and dynamic NTK set the rotary frequencies from the training length', () => {
  const yarn = applyPositionOverrides(rotaryOnly, { yarn: 4 }, 512);
  assert.deepEqual(yarn.rotary!.yarn, {
    factor: 4,
    originalMaxSeqLen: 512,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: 0.1 * Math.log(4) + 1,
  });
  const expected = yarnInverseFrequencies(16, 10000, yarn.rotary!.yarn!).map(Math.fround);
  assert.deepEqual(Array.from(rotarySettings(yarn)!.invFreq), Array.from(expected));
  assert.notDeepEqual(Array.from(rotarySettings(yarn)!.invFreq), Array.from(rotarySettings(rotaryOnly)!.invFreq));
  assert.equal(
    applyPositionOverrides(rotaryOnly, { yarn: 2, originalLength: 128 }, 512).rotary!.yarn!.originalMaxSeqLen,
    128,
  );
  assert.equal(applyPositionOverrides(rotaryOnly, { ntk: 8 }, 512).rotary!.ntkBaseRescale, 8);
  assert.deepEqual(applyPositionOverrides(rotaryOnly, { dynamicNtk: 2 }, 256).rotary!.dynamicNtk, {
    factor: 2,
    originalMaxSeqLen: 256,
  });
  // A scaling given replaces the model's own.
  const rescaled = applyPositionOverrides(yarn, { interpolation: 3 }, 512);
  assert.equal(rescaled.rotary!.yarn, null);
  assert.equal(rescaled.rotary!.interpolationFactor, 3);
  assert.match(describePositions(yarn), /YaRN ×4 from 512/);
});

test('ALiBi heads and xPos follow their flags', () => {
  const mixed = resolveConfig({
    vocabSize: 30,
    dim: 32,
    depth: 1,
    heads: 4,
    headDim: 8,
    alibiHeads: 2,
    rotary: { dim: 8, xpos: true },
  });
  assert.equal(applyPositionOverrides(mixed, { alibiHeads: 4 }, 64).alibiHeads, 4);
  assert.equal(applyPositionOverrides(mixed, { alibiHeads: 0 }, 64).alibiHeads, 0);
  assert.equal(rotarySettings(applyPositionOverrides(mixed, { xpos: false }, 64))!.xposScaleBase, 0);
  assert.equal(rotarySettings(mixed)!.xposScaleBase, 512);
  assert.match(
    describePositions(applyPositionOverrides(mixed, { alibiHeads: 4, xpos: false }, 64)),
    /^ALiBi on 4\/4 heads; rotary dim 8 base 10000$/,
  );
  // ALiBi on the two heads that had none changes what the model computes.
  const model = new Andromeda(mixed, { seed: 2 });
  const allAlibi = withWeightsOf(model, applyPositionOverrides(mixed, { alibiHeads: 4 }, 64));
  try {
    const ids = Int32Array.from({ length: 9 }, (_, i) => i + 1);
    const p = Int32Array.from({ length: 9 }, (_, i) => i);
    assert.ok(maxDifference(logitsAt(model, ids, p), logitsAt(allAlibi, ids, p)) > 1e-4);
  } finally {
    model.dispose();
    allAlibi.dispose();
  }
});

test('bad overrides are refused with the flag named', () => {
  const noRotary = resolveConfig({ vocabSize: 30, dim: 32, depth: 1, heads: 4, headDim: 8, alibiHeads: 4 });
  const cases: [() => unknown, RegExp][] = [
    [
      () => validatePositionOverrides({ yarn: 2, interpolation: 2 }),
      /one rotary scaling at a time, not --rotary-interpolation and --rotary-yarn/,
    ],
    [() => validatePositionOverrides({ ntk: 0.5 }), /--rotary-ntk must be a number ≥ 1, got 0.5/],
    [() => validatePositionOverrides({ interpolation: NaN }), /--rotary-interpolation must be a number ≥ 1/],
    [
      () => validatePositionOverrides({ originalLength: 512 }),
      /--original-length applies to --rotary-yarn or --rotary-dynamic-ntk/,
    ],
    [() => validatePositionOverrides({ yarn: 2, originalLength: 0 }), /--original-length must be a positive integer/],
    [() => validatePositionOverrides({ alibiHeads: -1 }), /--alibi-heads must be a non-negative integer/],
    [
      () => applyPositionOverrides(rotaryOnly, { alibiHeads: 3 }, 64),
      /--alibi-heads must be an integer from 0 to the model's 2 heads, got 3/,
    ],
    [() => applyPositionOverrides(noRotary, { yarn: 2 }, 64), /--rotary-yarn: the model has no rotary embedding/],
    [() => applyPositionOverrides(noRotary, { xpos: true }, 64), /--xpos: the model has no rotary embedding/],
  ];
  for (const [run, message] of cases) assert.throws(run, message);
  assert.deepEqual(validatePositionOverrides({}), []);
});

test("a scaling flag replaces a model's LongRoPE (Phi-3's) as it replaces the other scalings", () => {
  const half = 4; // rotary dim 16: one factor per frequency pair
  const longRope = resolveConfig({
    vocabSize: 30,
    dim: 32,
    depth: 1,
    heads: 2,
    headDim: 16,
    rotary: {
      dim: 16,
      longRope: {
        shortFactors: Array.from({ length: 2 * half }, () => 1),
        longFactors: Array.from({ length: 2 * half }, (_, i) => 1 + i),
        originalMaxSeqLen: 64,
        attentionFactor: 1.1,
      },
    },
  });
  assert.match(describePositions(longRope), /LongRoPE from 64/);
  const yarn = applyPositionOverrides(longRope, { yarn: 4 }, 64);
  assert.equal(yarn.rotary!.longRope, null);
  assert.equal(yarn.rotary!.yarn?.factor, 4);
  assert.equal(yarn.rotary!.yarn?.originalMaxSeqLen, 64);
  assert.doesNotMatch(describePositions(yarn), /LongRoPE/);
});
