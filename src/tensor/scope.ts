import type { Tensor } from './tensor.js';

/**
 * Deterministic memory: every tensor created inside `tidy` is disposed when it returns, except the
 * tensors it returns (which move to the enclosing scope) and tensors marked with `keep`.
 * Tensors created outside any scope belong to the caller, who disposes them.
 */
const stack: Set<Tensor>[] = [];

export function trackTensor(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

export function untrackTensor(t: Tensor): void {
  for (let i = stack.length - 1; i >= 0; i--) if (stack[i]!.delete(t)) return;
}

/** Removes `t` from every scope: its owner disposes it explicitly. */
export function keep<T extends Tensor>(t: T): T {
  untrackTensor(t);
  return t;
}

function collectTensors(value: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, out, seen);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out, seen);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collectTensors(v, out, seen);
}

let isTensor: (v: unknown) => v is Tensor = (_v): _v is Tensor => false;
export function setTensorPredicate(p: (v: unknown) => v is Tensor): void {
  isTensor = p;
}

/** Runs `fn` in a new scope; returns its result with every other tensor made inside disposed. */
export function tidy<T>(fn: () => T): T {
  if (fn.constructor.name === 'AsyncFunction')
    throw new TypeError('tidy: the function must be synchronous (scopes cannot span awaits)');
  const scope = new Set<Tensor>();
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  stack.pop();
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors);
  for (const t of scope) {
    if (survivors.has(t)) trackTensor(t);
    else t.dispose();
  }
  return result;
}

export function scopeDepth(): number {
  return stack.length;
}
