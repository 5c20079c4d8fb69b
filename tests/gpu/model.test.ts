// Model-level check on the GPU: the x-transformers 1.20 fixtures (logits, loss and every gradient)
// hold on the CUDA engine in float32 with the reference attention (every op of this engine), and
// within bf16 tolerance in bfloat16 with the default ('auto': the fused bf16 attention kernels).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tidy } from '../../src/tensor/scope.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { importXTransformers } from '../../src/model/xtransformers-import.js';
import type { DType } from '../../src/tensor/dtype.js';
import { FIXTURES, expectedOf, fixtureDir, relativeError, values } from '../model/helpers.js';
import { gpuTest } from './harness.js';

const bounds: Record<string, { logits: number; loss: number; grad: number }> = {
  float32: { logits: 1e-5, loss: 1e-5, grad: 1e-4 },
  bfloat16: { logits: 3e-2, loss: 2e-2, grad: 1e-1 },
};

for (const name of FIXTURES) {
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    gpuTest(
      `${name} on cuda (${dtype}, ${dtype === 'float32' ? 'reference' : 'auto'} attention): logits, loss and every ` +
        `gradient match x-transformers 1.20`,
      () => {
        const dir = fixtureDir(name);
        const { model, origin } = importXTransformers(dir, { dtype, device: 'cuda' });
        const io = readSafetensors(join(dir, 'io.safetensors'), { device: 'cuda' });
        const expected = expectedOf(name);
        const b = bounds[dtype]!;
        try {
          const report = tidy(() => {
            const tokens = io.tensors.get('tokens')!;
            const attention = dtype === 'float32' ? 'reference' : 'auto';
            const logits = model.forward(tokens, { attentionImplementation: attention });
            const loss = model.loss(tokens, { attentionImplementation: attention });
            loss.backward();
            return { logits: values(logits), loss: loss.item() };
          });
          const logitsError = relativeError(report.logits, values(io.tensors.get('logits')!));
          assert.ok(logitsError < b.logits, `logits relative error ${logitsError}`);
          assert.ok(
            Math.abs(report.loss - expected.loss) < b.loss * Math.max(1, Math.abs(expected.loss)),
            `loss ${report.loss} vs ${expected.loss}`,
          );
          const params = new Map(model.namedParameters());
          for (const { name: ours, originalName } of origin.parameters) {
            const grad = params.get(ours)!.grad;
            assert.ok(grad, `no gradient for ${ours}`);
            const error = relativeError(values(grad), values(io.tensors.get(`grad.${originalName}`)!));
            assert.ok(error < b.grad, `gradient of ${originalName} (${ours}): relative error ${error}`);
          }
        } finally {
          model.dispose();
          for (const t of io.tensors.values()) t.dispose();
        }
      },
    );
  }
}
