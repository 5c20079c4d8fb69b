// Activation checkpointing: a segment of the network runs forward without keeping its intermediate
// tensors and is recomputed during the backward pass. Memory for a stack of blocks drops from every
// block's activations to one block's plus each block's input, for one extra forward per step.
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { needsGrad, record, runBackward } from '../autograd/tape.js';
import { noGrad, withGrad } from '../autograd/grad-mode.js';
import { accumulateInto } from './backward.js';

/**
 * y = fn(x), recorded as one operation whose backward re-runs fn with autograd on and back-propagates
 * through the recomputed graph: gradients flow to x and accumulate into `params` (the trainable tensors
 * fn reads besides x). fn must compute the same values when re-run (no fresh randomness).
 */
export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, params: readonly Tensor[]): Tensor {
  const trainable = params.filter((p) => p.requiresGrad);
  const inputs = [x, ...trainable];
  if (!needsGrad(inputs)) return fn(x);
  const y = noGrad(() => tidy(() => fn(x)));
  return record(y, 'checkpoint', inputs, (gradOut) =>
    tidy(() => {
      const leaf = x.detach();
      leaf.requiresGrad = x.requiresGrad;
      let gradX: Tensor | null = null;
      withGrad(() => {
        const recomputed = fn(leaf);
        runBackward(
          recomputed,
          gradOut,
          (t, g) => {
            if (t !== leaf) return accumulateInto(t, g);
            if (!gradX) {
              gradX = Tensor.empty(x.shape, x.dtype, x.device);
              if (gradX.size > 0) x.engine.copy(g.strided(), gradX.strided(), x.shape);
            } else if (gradX.size > 0) {
              x.engine.binary('add', gradX.strided(), g.strided(), gradX.dense(), x.shape);
            }
          },
          (t) => t.view(t.shape, t.strides, t.offset),
        );
      });
      return [x.requiresGrad ? gradX : null, ...trainable.map(() => null)];
    }),
  );
}
