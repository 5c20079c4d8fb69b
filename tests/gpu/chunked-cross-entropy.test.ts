// The chunked linear cross-entropy on the CUDA engine against the unchunked head on the CUDA engine (linear →
// crossEntropy) and against itself on the CPU: several blocks (one partial), ignored rows, a bias, float32 and
// bfloat16 — the CUDA gradient kernel overwrites each block's logits with their gradient in place.
import assert from 'node:assert/strict';
import * as A from '../../src/index.js';
import { chunkedLinearCrossEntropy } from '../../src/ops/chunked-cross-entropy.js';
import { randomValues } from '../helpers/gradcheck.js';
import { gpuTest } from './harness.js';

const { tensor, tidy, Generator } = A;

gpuTest('chunked linear cross-entropy: CUDA chunked = CUDA full = CPU chunked, loss and gradients', () => {
  const rows = 2500,
    dim = 192,
    vocab = 3001;
  const gen = new Generator(17);
  const h0 = randomValues([rows, dim], gen);
  const w0 = randomValues([vocab, dim], gen, 0.1);
  const b0 = randomValues([vocab], gen, 0.1);
  const targets = Int32Array.from({ length: rows }, (_, i) =>
    i % 97 === 5 ? -100 : Math.floor(gen.uniform() * vocab),
  );
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const run = (device: string, chunked: boolean) =>
      tidy(() => {
        const h = tensor(h0, [rows, dim], { dtype, device, requiresGrad: true });
        const w = tensor(w0, [vocab, dim], { dtype, device, requiresGrad: true });
        const b = tensor(b0, [vocab], { dtype, device, requiresGrad: true });
        const t = tensor(targets, [rows], { dtype: 'int32', device });
        const loss = chunked
          ? chunkedLinearCrossEntropy(h, w, b, t, { chunkRows: 1024 })
          : A.crossEntropy(A.linear(h, w, b), t);
        loss.backward();
        return [loss, h.grad!, w.grad!, b.grad!].map((x) => Float64Array.from(x.toArray()));
      });
    const cudaChunked = run('cuda', true);
    const comparisons = [
      ['CUDA full', run('cuda', false)],
      ['CPU chunked', run('cpu', true)],
    ] as const;
    for (const [label, other] of comparisons) {
      for (const [i, name] of ['loss', 'd hidden', 'd weight', 'd bias'].entries()) {
        const a = cudaChunked[i]!,
          b = other[i]!;
        let num = 0,
          den = 0;
        for (let j = 0; j < a.length; j++) {
          num += (a[j]! - b[j]!) ** 2;
          den += b[j]! ** 2;
        }
        const error = Math.sqrt(num / Math.max(den, 1e-300));
        assert.ok(error < (dtype === 'float32' ? 1e-4 : 3e-2), `${dtype} ${name} vs ${label}: relative error ${error}`);
      }
    }
  }
});
