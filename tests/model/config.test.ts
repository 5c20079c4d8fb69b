import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, resolveConfig, type AndromedaConfigInput } from '../../src/model/config.js';
import { presetConfig, PRESET_NAMES } from '../../src/model/presets.js';
import { countParameters, parameterShapes } from '../../src/model/parameter-shapes.js';
import { alibiSlopes, headSlopes } from '../../src/model/alibi.js';
import { ntkBase, plainInverseFrequencies, rotarySettings, yarnInverseFrequencies } from '../../src/model/rotary.js';
import { Andromeda } from '../../src/model/andromeda.js';
import './helpers.js';

const small: AndromedaConfigInput = { vocabSize: 64, dim: 32, depth: 2, heads: 4, headDim: 8 };

test('presets: andromeda-3b and orca have exactly the published parameter counts (counted, not allocated)', () => {
  assert.equal(countParameters(presetConfig('andromeda-3b')), 2_461_369_600);
  assert.equal(countParameters(presetConfig('orca')), 36_655_648);
  assert.deepEqual(PRESET_NAMES.sort(), ['andromeda-3b', 'orca', 'small', 'tiny']);
  const s = presetConfig('small');
  assert.deepEqual(
    [s.vocabSize, s.dim, s.depth, s.heads, s.alibiHeads, s.kvHeads, s.shiftTokens, s.rotary?.xpos],
    [256, 256, 4, 4, 2, 1, 1, true],
  );
  const t = presetConfig('tiny', { vocabSize: 300 });
  assert.equal(t.vocabSize, 300);
  assert.ok(t.headDim >= 32);
});

test('parameterShapes describes exactly the parameters the model creates, for every option', () => {
  const variants: AndromedaConfigInput[] = [
    presetConfig('tiny'),
    { ...small, deepnorm: true, shiftTokens: 1, qkNorm: true, qkNormDimScale: true, kvHeads: 1 },
    {
      ...small,
      parallelBlocks: true,
      scaleResidual: true,
      tiedEmbeddings: true,
      norm: 'rmsnorm',
      ffActivation: 'swiglu',
      kvHeads: 2,
    },
    { ...small, ffActivation: 'geglu', normPosition: 'post', rotary: { dim: 8 } },
  ];
  for (const input of variants) {
    const model = new Andromeda(input, { initialize: false });
    try {
      const actual = new Map(model.namedParameters().map(([n, t]) => [n, [...t.shape]]));
      assert.deepEqual(actual, parameterShapes(model.config));
      assert.equal(model.parameterCount(), countParameters(model.config));
      for (const [name, t] of model.namedParameters()) {
        assert.equal(t.name, name);
        assert.ok(t.requiresGrad);
      }
    } finally {
      model.dispose();
    }
  }
});

function problems(input: AndromedaConfigInput): string {
  try {
    resolveConfig(input);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.message;
  }
  assert.fail('expected a ConfigError');
}

test('config validation rejects impossible combinations and says why', () => {
  assert.match(problems({ ...small, heads: 6, kvHeads: 4 }), /heads \(6\) must be a multiple of kvHeads \(4\)/);
  assert.match(
    problems({ ...small, heads: 8, kvHeads: 2, qkNorm: true, qkNormDimScale: true }),
    /qkNormDimScale with 2 KV heads for 8 heads.*one KV head or one per head/s,
  );
  assert.match(problems({ ...small, headDim: 16, rotary: true }), /rotary dim 32 is larger than the head dim 16/);
  assert.match(problems({ ...small, rotary: { dim: 7 } }), /rotary dim must be a positive even integer/);
  assert.match(problems({ ...small, qkNormDimScale: true }), /qkNormDimScale .* needs qkNorm/);
  assert.match(problems({ ...small, alibiHeads: 5 }), /alibiHeads must be an integer from 0 to heads \(4\)/);
  assert.match(problems({ ...small, deepnorm: true, parallelBlocks: true }), /parallelBlocks needs pre-norm/);
  assert.match(problems({ ...small, deepnorm: true, normPosition: 'pre' }), /deepnorm is a post-norm scheme/);
  assert.match(problems({ ...small, rotary: { interpolationFactor: 0.5, dim: 8 } }), /interpolationFactor must be ≥ 1/);
  assert.match(
    problems({ ...small, rotary: { dim: 8, interpolationFactor: 2, yarn: { factor: 4 } } }),
    /either interpolationFactor or yarn/,
  );
  assert.match(problems({ ...small, heads: 0 }), /heads must be a positive integer/);
  assert.match(problems({ ...small, headsCount: 3 } as AndromedaConfigInput), /unknown setting 'headsCount'/);
  // Every problem is reported at once.
  const all = problems({ ...small, heads: 6, kvHeads: 4, alibiHeads: 9 });
  assert.match(all, /multiple of kvHeads/);
  assert.match(all, /alibiHeads/);
});

test('deepnorm shorthand: post-norm, learned residual scale, c = (2·depth)^0.25, deepnorm init', () => {
  const c = resolveConfig({ ...small, depth: 8, deepnorm: true });
  assert.equal(c.normPosition, 'post');
  assert.equal(c.scaleResidual, true);
  assert.equal(c.residualConstant, 16 ** 0.25);
  assert.equal(c.init, 'deepnorm');
});

test('ALiBi slopes follow the exact rule for powers of two and the interleaved rule otherwise', () => {
  assert.deepEqual(
    alibiSlopes(8),
    [1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i),
  );
  assert.deepEqual(alibiSlopes(2), [2 ** -4, 2 ** -8]);
  assert.deepEqual(alibiSlopes(4), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8]);
  // 3: the two slopes for 2, then slope 0 of the list for 4.
  assert.deepEqual(alibiSlopes(3), [2 ** -4, 2 ** -8, 2 ** -2]);
  // 6: the four slopes for 4, then slopes 0 and 2 of the list for 8.
  assert.deepEqual(alibiSlopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]);
  // 12 (andromeda-3b): eight slopes 2^-1..2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  const twelve = alibiSlopes(12);
  [0.5, 1.5, 2.5, 3.5].forEach((e, i) => assert.ok(Math.abs(twelve[8 + i]! - 2 ** -e) < 1e-15));
  assert.deepEqual([...headSlopes(4, 2)], [2 ** -4, 2 ** -8, 0, 0]);
});

test('rotary: default dim, NTK base rescale, interpolation and YaRN frequencies', () => {
  const base = resolveConfig({ ...small, headDim: 64, rotary: { xpos: true } });
  assert.equal(base.rotary!.dim, 32);
  const plain = rotarySettings(base)!;
  assert.equal(plain.invFreq.length, 16);
  assert.equal(plain.xposScaleBase, 512);
  plain.invFreq.forEach((f, i) => assert.ok(Math.abs(f - 10000 ** (-(2 * i) / 32)) <= 1e-7 * f));

  const ntk = rotarySettings(resolveConfig({ ...small, headDim: 64, rotary: { ntkBaseRescale: 4 } }))!;
  const rescaled = 10000 * 4 ** (32 / 30);
  assert.equal(ntkBase(10000, 4, 32), rescaled);
  ntk.invFreq.forEach((f, i) => assert.ok(Math.abs(f - rescaled ** (-(2 * i) / 32)) <= 1e-7 * f));

  const interpolated = rotarySettings(resolveConfig({ ...small, headDim: 64, rotary: { interpolationFactor: 4 } }))!;
  interpolated.invFreq.forEach((f, i) => assert.ok(Math.abs(f - plain.invFreq[i]! / 4) <= 1e-7 * f));

  // YaRN: high frequencies (many turns over the original context) are kept, low ones divided by s.
  const yarn = yarnInverseFrequencies(32, 10000, {
    factor: 8,
    originalMaxSeqLen: 2048,
    betaFast: 32,
    betaSlow: 1,
    attentionFactor: 1,
  });
  const reference = plainInverseFrequencies(32, 10000);
  const turns = (f: number) => (2048 * f) / (2 * Math.PI);
  reference.forEach((f, i) => {
    if (turns(f) > 40) assert.equal(yarn[i], f, `frequency ${i} keeps its value`);
    if (turns(f) < 0.5) assert.ok(Math.abs(yarn[i]! - f / 8) < 1e-15, `frequency ${i} is interpolated`);
    assert.ok(yarn[i]! <= f && yarn[i]! >= f / 8 - 1e-18);
  });
  const withYarn = rotarySettings(
    resolveConfig({ ...small, headDim: 64, rotary: { yarn: { factor: 8, originalMaxSeqLen: 2048 } } }),
  )!;
  const t = 0.1 * Math.log(8) + 1;
  assert.ok(Math.abs(withYarn.scaleMultiplier - t * t) < 1e-15);
  const noop = rotarySettings(resolveConfig({ ...small, headDim: 64, rotary: { yarn: { factor: 1 } } }))!;
  assert.deepEqual([...noop.invFreq], [...plain.invFreq]);
  assert.equal(noop.scaleMultiplier, 1);
});
