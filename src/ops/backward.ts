import { Tensor } from '../tensor/tensor.js';
import { runBackward, soleOwner } from '../autograd/tape.js';
import { ones } from './creation.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { keep } from '../tensor/scope.js';

/** Adds g into leaf.grad (creating it, in the leaf's dtype, on first use). */
export function accumulateInto(leaf: Tensor, g: Tensor): void {
  leaf.assertAlive('accumulateInto', 'leaf');
  g.assertAlive('accumulateInto', 'g');
  if (!shapesEqual(g.shape, leaf.shape) || g.device !== leaf.device) {
    throw new RangeError(
      `accumulateInto: gradient ${formatShape(g.shape)} on ${g.device} does not match ` +
        `leaf ${formatShape(leaf.shape)} on ${leaf.device}`,
    );
  }
  const gradValue = g.dtype === leaf.dtype ? g : castForLeaf(g, leaf);
  if (!leaf.grad) {
    // A gradient the tape would free next is adopted as it is (a view keeps its buffer); others are copied.
    if (soleOwner(gradValue) && gradValue.size > 0) {
      leaf.grad = keep(gradValue.view(leaf.shape, gradValue.strides, 0));
    } else {
      const own = Tensor.empty(leaf.shape, leaf.dtype, leaf.device);
      if (own.size > 0) leaf.engine.copy(gradValue.strided(), own.strided(), leaf.shape);
      leaf.grad = keep(own);
    }
  } else {
    const dst = leaf.grad;
    if (dst.size > 0) leaf.engine.binary('add', dst.strided(), gradValue.strided(), dst.dense(), dst.shape);
  }
  if (gradValue !== g) gradValue.dispose();
}

function castForLeaf(g: Tensor, leaf: Tensor): Tensor {
  const out = Tensor.empty(g.shape, leaf.dtype, g.device);
  if (out.size > 0) g.engine.copy(g.strided(), out.strided(), g.shape);
  return out;
}

/**
 * Computes gradients of `root` (a scalar unless `grad` is given) with respect to every leaf that
 * requires one, accumulating into their `.grad`.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  root.assertAlive('backward', 'tensor');
  if (!grad && root.size !== 1) {
    throw new RangeError(
      `backward: a gradient must be given for a non-scalar tensor of shape ${formatShape(root.shape)}`,
    );
  }
  const seed = grad ?? ones(root.shape, root.dtype, root.device);
  try {
    runBackward(root, seed, accumulateInto, (t) => t.view(t.shape, t.strides, t.offset));
  } finally {
    if (!grad) seed.dispose();
  }
}

/** Clears `.grad` of the given tensors (freeing the memory). */
export function zeroGrad(tensors: Iterable<Tensor>): void {
  for (const t of tensors) {
    t.grad?.dispose();
    t.grad = null;
  }
}
