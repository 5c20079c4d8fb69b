import type { Tensor } from '../tensor/tensor.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import { isGradEnabled, noGrad } from './grad-mode.js';

/**
 * The gradients an op may add its own into instead of returning new ones: `into[i]` is input i's
 * gradient so far (contiguous, in the input's dtype, with no other holder), or undefined. An op that
 * accumulates into it returns that same tensor for input i (a matrix product does it in its epilogue,
 * which saves the separate add).
 */
export type Accumulators = readonly (Tensor | undefined)[];

/**
 * The record of one operation: its inputs and a function from the gradient of its output to the
 * gradients of its inputs (null where an input needs none). The chain of records is the tape.
 * `backward` must return new tensors or views, never a tensor the forward pass saved, except an
 * accumulator it was given and added into.
 */
export interface GradFn {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  backward(gradOut: Tensor, into: Accumulators): readonly (Tensor | null)[];
}

/** True when `t` is the only holder of its whole buffer, contiguous: a gradient nobody else can see. */
export function soleOwner(t: Tensor): boolean {
  return (
    t.isContiguous() && t.offset === 0 && t.storage.holders === 1 && t.storage.bytes === t.size * DTYPE_BYTES[t.dtype]
  );
}

/** Attaches a gradient record to `out` when autograd is on and some input needs a gradient. */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: (g: Tensor, into: Accumulators) => readonly (Tensor | null)[],
): Tensor {
  if (!isGradEnabled() || !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.gradFn = { op, inputs, backward };
  return out;
}

/** Whether an op on these inputs will be recorded. */
export function needsGrad(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((t) => t.requiresGrad);
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: deep models make recursion overflow the stack.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i]!;
      if (next.gradFn && !visited.has(next)) {
        visited.add(next);
        stack.push([next, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

/**
 * Reverse-mode differentiation from `root`. Leaves that require gradients accumulate into `.grad`
 * (`accumulateInto` copies, adds, or keeps a view of a buffer nothing else holds; never the tensor it
 * is given); intermediate gradients are freed as soon as they have been propagated.
 */
export function runBackward(
  root: Tensor,
  seed: Tensor,
  accumulateInto: (leaf: Tensor, g: Tensor) => void,
  alias: (t: Tensor) => Tensor,
): void {
  if (!root.requiresGrad)
    throw new Error(
      `backward: the tensor ${formatShape(root.shape)} does not require a gradient (no trainable input reached it, ` +
        `or it was computed under noGrad)`,
    );
  if (!shapesEqual(seed.shape, root.shape)) {
    throw new RangeError(
      `backward: gradient shape ${formatShape(seed.shape)} does not match tensor shape ${formatShape(root.shape)}`,
    );
  }
  if (!root.gradFn) {
    accumulateInto(root, seed);
    return;
  }
  const grads = new Map<Tensor, Tensor>();
  const handedOut = new Set<Tensor>();
  const own = (g: Tensor): Tensor => {
    // A backward may return one tensor for several inputs (add): give each holder its own view.
    if (handedOut.has(g)) return alias(g);
    handedOut.add(g);
    return g;
  };
  grads.set(root, alias(seed));
  noGrad(() => {
    for (const node of topologicalOrder(root)) {
      const g = grads.get(node);
      if (!g) continue;
      grads.delete(node);
      const fn = node.gradFn!;
      for (const [i, input] of fn.inputs.entries()) input.assertAlive(`backward of ${fn.op}`, `input ${i}`);
      const into = fn.inputs.map((input) => {
        const existing = input.gradFn ? grads.get(input) : undefined;
        return existing && existing.dtype === input.dtype && soleOwner(existing) ? existing : undefined;
      });
      const inputGrads = fn.backward(g, into);
      fn.inputs.forEach((input, i) => {
        const gi = inputGrads[i];
        if (!gi || !input.requiresGrad) return;
        if (gi === into[i]) return; // added into the gradient already held for this input
        if (!shapesEqual(gi.shape, input.shape)) {
          throw new Error(
            `internal: backward of ${fn.op} gave a gradient of ` +
              `shape ${formatShape(gi.shape)} for input ${i} of shape ${formatShape(input.shape)}`,
          );
        }
        if (!input.gradFn) {
          accumulateInto(input, gi);
          return;
        }
        const existing = grads.get(input);
        if (!existing) grads.set(input, own(gi));
        else {
          grads.set(input, existing.add(gi));
          existing.dispose();
        }
      });
      // This node's gradient is spent (an input given it got a view or a copy): free it now, not at
      // the end of the enclosing scope, so a backward pass holds only the gradients still to be used.
      g.dispose();
      for (const t of new Set(inputGrads)) if (t && t !== g && !handedOut.has(t)) t.dispose();
    }
  });
  for (const g of grads.values()) g.dispose();
}
