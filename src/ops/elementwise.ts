// Elementwise arithmetic with numpy broadcasting, and the unary maps, each with its gradient.
import type { BinaryOp, UnaryGradOp, UnaryOp } from '../engine/engine.js';
import { Tensor } from '../tensor/tensor.js';
import { record } from '../autograd/tape.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike } from './util.js';
import { sumTo } from './layout.js';
import { binaryRaw, contiguousRaw } from './raw.js';

function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor, name: string): Tensor {
  assertSameDevice(name, { a, b });
  assertSameDType(name, { a, b });
  return binaryRaw(op, a, b, name);
}

export function unaryKernel(op: UnaryOp, x: Tensor, scalarArg = 0, name: string = op): Tensor {
  x.assertAlive(name, 'x');
  assertFloat(name, 'x', x);
  const src = x.isContiguous() ? x : contiguousRaw(x);
  const out = emptyLike(x);
  if (out.size > 0) x.engine.unary(op, src.dense(name), out.dense(), out.size, scalarArg);
  if (src !== x) src.dispose();
  return out;
}

function unaryGradKernel(op: UnaryGradOp, x: Tensor, g: Tensor): Tensor {
  const xs = x.isContiguous() ? x : contiguousRaw(x);
  const gs = g.isContiguous() ? g : contiguousRaw(g);
  const out = emptyLike(x);
  if (out.size > 0) x.engine.unaryGrad(op, xs.dense(), gs.dense(), out.dense(), out.size);
  if (xs !== x) xs.dispose();
  if (gs !== g) gs.dispose();
  return out;
}

const asTensor = (v: Tensor | number): v is Tensor => v instanceof Tensor;

export function add(a: Tensor, b: Tensor | number): Tensor {
  if (!asTensor(b)) {
    const out = unaryKernel('addScalar', a, b, 'add');
    return record(out, 'add', [a], (g) => [g.view(g.shape, g.strides, g.offset)]);
  }
  const out = binaryKernel('add', a, b, 'add');
  return record(out, 'add', [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

export function sub(a: Tensor, b: Tensor | number): Tensor {
  if (!asTensor(b)) return add(a, -b);
  const out = binaryKernel('sub', a, b, 'sub');
  return record(out, 'sub', [a, b], (g) => {
    const ng = neg(g);
    const gb = sumTo(ng, b.shape);
    ng.dispose();
    return [sumTo(g, a.shape), gb];
  });
}

export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (!asTensor(b)) {
    const out = unaryKernel('scale', a, b, 'mul');
    return record(out, 'mul', [a], (g) => [unaryKernel('scale', g, b)]);
  }
  const out = binaryKernel('mul', a, b, 'mul');
  return record(out, 'mul', [a, b], (g) => [
    a.requiresGrad ? reduceProduct(g, b, a.shape) : null,
    b.requiresGrad ? reduceProduct(g, a, b.shape) : null,
  ]);
}

/** sumTo(g · other, shape), freeing the product. */
function reduceProduct(g: Tensor, other: Tensor, shape: readonly number[]): Tensor {
  const p = binaryKernel('mul', g, other, 'mul');
  const r = sumTo(p, shape);
  p.dispose();
  return r;
}

export function div(a: Tensor, b: Tensor | number): Tensor {
  if (!asTensor(b)) return mul(a, 1 / b);
  const out = binaryKernel('div', a, b, 'div');
  return record(out, 'div', [a, b], (g) => {
    let ga: Tensor | null = null,
      gb: Tensor | null = null;
    if (a.requiresGrad) {
      const q = binaryKernel('div', g, b, 'div');
      ga = sumTo(q, a.shape);
      q.dispose();
    }
    if (b.requiresGrad) {
      // d(a/b)/db = −out / b
      const q = binaryKernel('div', out, b, 'div');
      const p = binaryKernel('mul', g, q, 'div');
      const n = unaryKernel('neg', p);
      gb = sumTo(n, b.shape);
      q.dispose();
      p.dispose();
      n.dispose();
    }
    return [ga, gb];
  });
}

export function maximum(a: Tensor, b: Tensor): Tensor {
  const out = binaryKernel('max', a, b, 'maximum');
  return record(out, 'maximum', [a, b], (g) => selectGrad(g, a, b, 'gt'));
}

export function minimum(a: Tensor, b: Tensor): Tensor {
  const out = binaryKernel('min', a, b, 'minimum');
  return record(out, 'minimum', [a, b], (g) => selectGrad(g, a, b, 'lt'));
}

/** Gradient of max/min: to `a` where a wins (ties go to a), else to `b`. */
function selectGrad(g: Tensor, a: Tensor, b: Tensor, cmp: 'gt' | 'lt'): Tensor[] {
  const wins = binaryKernel(cmp, b, a, cmp); // 1 where b strictly wins
  const loses = unaryKernel('neg', wins);
  const aMask = unaryKernel('addScalar', loses, 1);
  const ga = reduceProduct(g, aMask, a.shape);
  const gb = reduceProduct(g, wins, b.shape);
  wins.dispose();
  loses.dispose();
  aMask.dispose();
  return [ga, gb];
}

/** Elementwise comparison results as 0/1 in the inputs' dtype (no gradient). */
export function greater(a: Tensor, b: Tensor): Tensor {
  return binaryKernel('gt', a, b, 'greater');
}
export function less(a: Tensor, b: Tensor): Tensor {
  return binaryKernel('lt', a, b, 'less');
}
export function equal(a: Tensor, b: Tensor): Tensor {
  return binaryKernel('eq', a, b, 'equal');
}

export function neg(x: Tensor): Tensor {
  const out = unaryKernel('neg', x);
  return record(out, 'neg', [x], (g) => [unaryKernel('neg', g)]);
}

export function exp(x: Tensor): Tensor {
  const out = unaryKernel('exp', x);
  return record(out, 'exp', [x], (g) => [binaryKernel('mul', g, out, 'exp')]);
}

export function log(x: Tensor): Tensor {
  const out = unaryKernel('log', x);
  return record(out, 'log', [x], (g) => [binaryKernel('div', g, x, 'log')]);
}

export function sqrt(x: Tensor): Tensor {
  const out = unaryKernel('sqrt', x);
  return record(out, 'sqrt', [x], (g) => {
    const q = binaryKernel('div', g, out, 'sqrt');
    const r = unaryKernel('scale', q, 0.5);
    q.dispose();
    return [r];
  });
}

export function rsqrt(x: Tensor): Tensor {
  const out = unaryKernel('rsqrt', x);
  return record(out, 'rsqrt', [x], (g) => {
    // d x^-1/2 = −½ x^-3/2 = −½ out³
    const o3 = unaryKernel('powScalar', out, 3);
    const p = binaryKernel('mul', g, o3, 'rsqrt');
    const r = unaryKernel('scale', p, -0.5);
    o3.dispose();
    p.dispose();
    return [r];
  });
}

export function square(x: Tensor): Tensor {
  const out = unaryKernel('square', x);
  return record(out, 'square', [x], (g) => {
    const p = binaryKernel('mul', g, x, 'square');
    const r = unaryKernel('scale', p, 2);
    p.dispose();
    return [r];
  });
}

export function pow(x: Tensor, exponent: number): Tensor {
  const out = unaryKernel('powScalar', x, exponent);
  return record(out, 'pow', [x], (g) => {
    const d = unaryKernel('powScalar', x, exponent - 1);
    const p = binaryKernel('mul', g, d, 'pow');
    const r = unaryKernel('scale', p, exponent);
    d.dispose();
    p.dispose();
    return [r];
  });
}

export function sin(x: Tensor): Tensor {
  const out = unaryKernel('sin', x);
  return record(out, 'sin', [x], (g) => {
    const c = unaryKernel('cos', x);
    const r = binaryKernel('mul', g, c, 'sin');
    c.dispose();
    return [r];
  });
}

export function cos(x: Tensor): Tensor {
  const out = unaryKernel('cos', x);
  return record(out, 'cos', [x], (g) => {
    const s = unaryKernel('sin', x);
    const p = binaryKernel('mul', g, s, 'cos');
    const r = unaryKernel('neg', p);
    s.dispose();
    p.dispose();
    return [r];
  });
}

function mapWithGrad(op: UnaryOp & UnaryGradOp, x: Tensor): Tensor {
  const out = unaryKernel(op, x);
  return record(out, op, [x], (g) => [unaryGradKernel(op, x, g)]);
}

/** GELU with the exact erf form. */
export function gelu(x: Tensor): Tensor {
  return mapWithGrad('gelu', x);
}
export function sigmoid(x: Tensor): Tensor {
  return mapWithGrad('sigmoid', x);
}
export function silu(x: Tensor): Tensor {
  return mapWithGrad('silu', x);
}
export function tanh(x: Tensor): Tensor {
  return mapWithGrad('tanh', x);
}
export function relu(x: Tensor): Tensor {
  return mapWithGrad('relu', x);
}
export function abs(x: Tensor): Tensor {
  return mapWithGrad('abs', x);
}
