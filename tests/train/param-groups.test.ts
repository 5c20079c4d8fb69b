import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupParameters, isNoDecayParameter } from '../../src/train/param-groups.js';
import { ToyModel } from './toy-model.js';
import { zeros } from '../../src/ops/creation.js';

test('norms, biases, embeddings and scale vectors get no weight decay; matrices do', () => {
  const cases: Array<[string, number[], boolean]> = [
    ['token_emb.weight', [300, 64], true],
    ['layers.0.attn.to_q.weight', [64, 64], false],
    ['layers.0.ff.0.bias', [256], true],
    ['layers.0.norm.weight', [64], true],
    ['final_norm.weight', [64], true],
    ['layers.0.attn.qk_dim_scale', [6, 32], true],
    ['layers.0.attn.dim_scale.q', [6, 32], true],
    ['layers.0.residual_scale', [64], true],
    ['to_logits.weight', [300, 64], false],
    ['blocks.1.ln1.weight', [64], true],
  ];
  for (const [name, shape, exempt] of cases) assert.equal(isNoDecayParameter(name, shape), exempt, name);
});

test('groupParameters builds a decayed group and a weight-decay-0 group from a model', () => {
  const model = new ToyModel({ vocabSize: 20, dim: 8 }, 1);
  try {
    const named = model.namedParameters().map(([name, tensor]) => ({ name, tensor }));
    const g = groupParameters(named, { weightDecay: 0.1 });
    assert.deepEqual(g.decay.sort(), ['head.weight', 'hidden.weight']);
    assert.deepEqual(g.noDecay.sort(), ['emb.weight', 'head.bias', 'hidden.bias', 'norm.bias', 'norm.weight']);
    assert.equal(g.groups.length, 2);
    assert.equal(g.groups[0].hyper.weightDecay, 0.1);
    assert.equal(g.groups[1].hyper.weightDecay, 0);
    assert.equal(g.groups[0].params.length + g.groups[1].params.length, named.length);
    const withEmb = groupParameters(named, { weightDecay: 0.1, decayEmbeddings: true });
    assert.ok(withEmb.decay.includes('emb.weight'));
  } finally {
    model.dispose();
  }
});

test('a parameter list of vectors only gives one group', () => {
  const t = zeros([4]);
  try {
    const g = groupParameters([{ name: 'b', tensor: t }], { weightDecay: 0.1 });
    assert.equal(g.groups.length, 1);
    assert.equal(g.groups[0].hyper.weightDecay, 0);
  } finally {
    t.dispose();
  }
});
