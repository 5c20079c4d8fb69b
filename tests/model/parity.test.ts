import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tidy } from '../../src/tensor/scope.js';
import { getEngine } from '../../src/engine/index.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { importXTransformers } from '../../src/model/xtransformers-import.js';
import type { DType } from '../../src/tensor/dtype.js';
import { FIXTURES, expectedOf, fixtureDir, relativeError, values } from './helpers.js';

const fusedAvailable = typeof getEngine('cpu').attentionForward === 'function';
const paths: ('reference' | 'fused')[] = fusedAvailable ? ['reference', 'fused'] : ['reference'];

for (const name of FIXTURES) {
  for (const dtype of ['float32', 'float64'] as DType[]) {
    for (const path of paths) {
      test(`${name}: logits, loss and every gradient match x-transformers 1.20 (${dtype}, ${path} attention)`, () => {
        const dir = fixtureDir(name);
        const { model, origin, warnings } = importXTransformers(dir, { dtype });
        assert.deepEqual(warnings, []);
        const io = readSafetensors(join(dir, 'io.safetensors'));
        const expected = expectedOf(name);
        try {
          const report = tidy(() => {
            const tokens = io.tensors.get('tokens')!;
            const logits = model.forward(tokens, { attentionImplementation: path });
            const loss = model.loss(tokens, { attentionImplementation: path });
            loss.backward();
            return { logits: values(logits), loss: loss.item() };
          });
          const logitsError = relativeError(report.logits, values(io.tensors.get('logits')!));
          assert.ok(logitsError < 1e-5, `logits relative error ${logitsError}`);
          assert.ok(Math.abs(report.loss - expected.loss) < 1e-6, `loss ${report.loss} vs ${expected.loss}`);
          const params = new Map(model.namedParameters());
          assert.equal(
            origin.parameters.length,
            Object.keys(expected.params).filter((n) => !n.includes('rotary_pos_emb')).length,
          );
          for (const { name: ours, originalName } of origin.parameters) {
            const grad = params.get(ours)!.grad;
            assert.ok(grad, `no gradient for ${ours}`);
            const error = relativeError(values(grad), values(io.tensors.get(`grad.${originalName}`)!));
            assert.ok(error < 1e-4, `gradient of ${originalName} (${ours}): relative error ${error}`);
          }
        } finally {
          model.dispose();
          for (const t of io.tensors.values()) t.dispose();
        }
      });
    }
  }
}
