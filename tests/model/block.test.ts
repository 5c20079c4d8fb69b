// Each block form against its formula written out with plain elementwise ops (no fused add + norm,
// no norm kernel) in float64: values and gradients of the input and of every parameter. The branches
// (attention, feed-forward) are the block's own; what is checked is the residual and norm structure
// around them, and that the fused add + norm is what runs underneath.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { Generator } from '../../src/tensor/random.js';
import { getEngine } from '../../src/engine/index.js';
import { add, mul, rsqrt, square, sub } from '../../src/ops/elementwise.js';
import { mean, sum } from '../../src/ops/reduce.js';
import { resolveConfig, type AndromedaConfig, type AndromedaConfigInput } from '../../src/model/config.js';
import { makeBlock, ParallelBlock, PostNormBlock, PreNormBlock, type Block } from '../../src/model/block.js';
import { rotarySettings } from '../../src/model/rotary.js';
import { headSlopes } from '../../src/model/alibi.js';
import { shiftTokens } from '../../src/ops/fused/token-shift.js';
import type { LayerState } from '../../src/model/context.js';
import { maxAbsDiff, values } from './helpers.js';

const cpu = getEngine('cpu');
const batch = 2,
  n = 7;
const base: AndromedaConfigInput = { vocabSize: 11, dim: 16, depth: 3, heads: 4, headDim: 4, alibiHeads: 2 };
const state: LayerState = { sequence: { positions: null, segments: null, implementation: 'reference' }, cache: null };

function blockOf(config: AndromedaConfig, seed: number): Block {
  const block = makeBlock(
    config,
    0,
    rotarySettings(config),
    config.alibiHeads > 0 ? headSlopes(config.heads, config.alibiHeads) : null,
    { dtype: 'float64' },
  );
  // Every parameter random (norm weights and residual scales around 1, so nothing is an identity).
  const g = new Generator(seed);
  const state = new Map<string, Tensor>();
  for (const [name, p] of block.namedParameters()) {
    const around = /Norm\.weight$|norm\.weight$|ResidualScale$|residualScale$/.test(name) ? 1 : 0;
    state.set(
      name,
      Tensor.fromArray(
        Float64Array.from({ length: p.size }, () => around + 0.5 * g.normal()),
        p.shape,
        'float64',
      ),
    );
  }
  block.loadStateDict(state);
  for (const t of state.values()) t.dispose();
  return block;
}

/** The norm of the config, composed: (x − mean)/sqrt(var + eps)·w + b, or x/sqrt(mean(x²) + eps)·w. */
function plainNorm(config: AndromedaConfig, params: Map<string, Tensor>, prefix: string, x: Tensor): Tensor {
  const w = params.get(`${prefix}.weight`)!;
  if (config.norm === 'rmsnorm') return mul(mul(x, rsqrt(add(mean(square(x), -1, true), config.normEps))), w);
  const centred = sub(x, mean(x, -1, true));
  return add(
    mul(mul(centred, rsqrt(add(mean(square(centred), -1, true), config.normEps))), w),
    params.get(`${prefix}.bias`)!,
  );
}

/** The spec's sub-layer formulas with the block's branches and plain ops. */
function reference(block: Block, config: AndromedaConfig, x: Tensor): Tensor {
  const params = new Map(block.namedParameters());
  const shift = (h: Tensor): Tensor => (config.shiftTokens > 0 ? shiftTokens(h, config.shiftTokens) : h);
  const attn = (h: Tensor): Tensor => block.attention.forward(shift(h), state);
  const ff = (h: Tensor): Tensor => block.feedForward.forward(shift(h));
  const residual = (h: Tensor, scaleName: string): Tensor => {
    const scaled = config.scaleResidual ? mul(h, params.get(scaleName)!) : h;
    return mul(scaled, config.residualConstant);
  };
  const norm = (prefix: string, h: Tensor): Tensor => plainNorm(config, params, prefix, h);
  if (block instanceof ParallelBlock) {
    const h = norm('norm', x);
    return add(add(attn(h), ff(h)), residual(x, 'residualScale'));
  }
  if (block instanceof PreNormBlock) {
    const afterAttention = add(attn(norm('attentionNorm', x)), residual(x, 'attentionResidualScale'));
    return add(ff(norm('feedForwardNorm', afterAttention)), residual(afterAttention, 'feedForwardResidualScale'));
  }
  const afterAttention = norm('attentionNorm', add(attn(x), residual(x, 'attentionResidualScale')));
  return norm('feedForwardNorm', add(ff(afterAttention), residual(afterAttention, 'feedForwardResidualScale')));
}

/** Output, and the gradients of x and of every parameter for the loss Σ out·upstream. */
function valuesAndGradients(
  block: Block,
  run: (x: Tensor) => Tensor,
  seed: number,
): { out: Float64Array; grads: Map<string, Float64Array> } {
  return tidy(() => {
    const g = new Generator(seed);
    const random = (): Tensor =>
      Tensor.fromArray(
        Float64Array.from({ length: batch * n * 16 }, () => g.normal()),
        [batch, n, 16],
        'float64',
      );
    const x = random().requireGrad(true);
    const out = run(x);
    sum(mul(out, random())).backward();
    const grads = new Map<string, Float64Array>([['input', values(x.grad!)]]);
    for (const [name, p] of block.namedParameters()) grads.set(name, values(p.grad!));
    block.zeroGrad();
    return { out: values(out), grads };
  });
}

/** Engine addNorm calls (the fused residual add + norm) made by fn. */
function fusedAddNormCalls(fn: () => void): number {
  const original = cpu.addNorm!;
  let calls = 0;
  cpu.addNorm = function (this: typeof cpu, ...args: Parameters<typeof original>) {
    calls++;
    return original.apply(this, args);
  };
  try {
    fn();
  } finally {
    cpu.addNorm = original;
  }
  return calls;
}

const cases: [
  string,
  Partial<AndromedaConfigInput>,
  typeof PreNormBlock | typeof PostNormBlock | typeof ParallelBlock,
  number,
][] = [
  [
    'pre-norm, layer norm, learned residual scale and constant, token shift',
    { scaleResidual: true, residualConstant: 1.7, shiftTokens: 1 },
    PreNormBlock,
    1,
  ],
  ['pre-norm, RMS norm', { norm: 'rmsnorm' }, PreNormBlock, 1],
  ['post-norm (DeepNorm), token shift', { deepnorm: true, shiftTokens: 1 }, PostNormBlock, 2],
  ['post-norm, RMS norm, no residual scale', { normPosition: 'post', norm: 'rmsnorm' }, PostNormBlock, 2],
  [
    'parallel, learned residual scale and constant, token shift',
    { parallelBlocks: true, scaleResidual: true, residualConstant: 0.8, shiftTokens: 1 },
    ParallelBlock,
    0,
  ],
];

for (const [name, input, form, fusedCalls] of cases) {
  test(`block form ${form.name} (${name}) equals its formula in plain ops: values and gradients`, () => {
    const config = resolveConfig({ ...base, ...input });
    const block = blockOf(config, 3);
    assert.ok(block instanceof form, `makeBlock built ${block.constructor.name}, expected ${form.name}`);
    let fused!: ReturnType<typeof valuesAndGradients>;
    const calls = fusedAddNormCalls(() => {
      fused = valuesAndGradients(block, (x) => block.forward(x, state), 4);
    });
    const plain = valuesAndGradients(block, (x) => reference(block, config, x), 4);
    assert.ok(maxAbsDiff(fused.out, plain.out) < 1e-12, `output differs by ${maxAbsDiff(fused.out, plain.out)}`);
    assert.deepEqual([...fused.grads.keys()], [...plain.grads.keys()]);
    for (const [tensor, grad] of fused.grads) {
      const reference = plain.grads.get(tensor)!;
      assert.ok(
        reference.some((v) => v !== 0),
        `${tensor}: the reference gradient is zero, the check would be empty`,
      );
      assert.ok(maxAbsDiff(grad, reference) < 1e-11, `${tensor}: gradient differs by ${maxAbsDiff(grad, reference)}`);
    }
    assert.equal(calls, fusedCalls, 'fused residual add + norm calls in the forward');
    block.dispose();
  });
}

test('block parameters keep their names and order in every form (checkpoints and imports read them)', () => {
  const names = (input: Partial<AndromedaConfigInput>): string[] => {
    const block = blockOf(resolveConfig({ ...base, ...input }), 1);
    const out = block
      .namedParameters()
      .map(([p]) => p)
      .filter((p) => !p.startsWith('attention.') && !p.startsWith('feedForward.'));
    block.dispose();
    return out;
  };
  const sequential = [
    'attentionResidualScale',
    'feedForwardResidualScale',
    'attentionNorm.weight',
    'attentionNorm.bias',
    'feedForwardNorm.weight',
    'feedForwardNorm.bias',
  ];
  assert.deepEqual(names({ deepnorm: true }), sequential);
  assert.deepEqual(names({ scaleResidual: true }), sequential);
  assert.deepEqual(names({}), sequential.slice(2));
  assert.deepEqual(names({ parallelBlocks: true, scaleResidual: true }), ['residualScale', 'norm.weight', 'norm.bias']);
});
