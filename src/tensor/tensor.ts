import type { Engine, Dense, Strided } from '../engine/engine.js';
import { getEngine } from '../engine/registry.js';
import { DTYPE_BYTES, assertDType, decodeHost, encodeHost, type DType, type HostArray } from './dtype.js';
import { checkView, checkedNumel, contiguousStrides, describeValue, formatShape, numel, type Shape } from './shape.js';
import { Storage } from './storage.js';
import { setTensorPredicate, trackTensor, untrackTensor } from './scope.js';
import { rememberHostInts } from './host-ints.js';
import type { GradFn } from '../autograd/tape.js';
import * as ops from '../ops/index.js';

let nextId = 1;

/**
 * An n-dimensional array on one device. A tensor is a view (shape, strides, offset) of a shared
 * `Storage`; reshape/transpose/slice/expand make new views without copying. Memory is released by
 * `dispose()` or by the enclosing `tidy` scope, never by the garbage collector.
 */
export class Tensor {
  readonly id = nextId++;
  /** True for trainable leaves and for results of operations on them. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward()`. Owned by this tensor. */
  grad: Tensor | null = null;
  /** How this tensor was computed, for autograd; null for leaves. */
  gradFn: GradFn | null = null;
  /** Optional name used in error messages (parameters carry their path). */
  name: string | undefined;
  private disposedFlag = false;

  readonly storage: Storage;
  /** Frozen copies of the caller's arrays: a view checked once must stay as checked. */
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly dtype: DType;
  readonly offset: number;

  /** A tensor viewing `storage`; it takes a reference to the storage, which `dispose` gives back. */
  constructor(
    storage: Storage,
    shape: readonly number[],
    dtype: DType,
    strides: readonly number[] = contiguousStrides(shape),
    offset = 0,
  ) {
    Tensor.checkLayout(storage, shape, dtype, strides, offset, 'tensor');
    this.storage = storage.retain();
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...strides]);
    this.dtype = dtype;
    this.offset = offset;
    trackTensor(this);
  }

  /**
   * Every tensor is checked here, before an engine can see it: a live storage, a known dtype, a valid
   * shape, and a view (strides, offset) that stays inside the storage. Kernels take raw addresses and
   * trust these numbers, so a bad view would read or write other memory.
   */
  private static checkLayout(
    storage: Storage,
    shape: unknown,
    dtype: DType,
    strides: unknown,
    offset: unknown,
    op: string,
  ): void {
    if (!(storage instanceof Storage))
      throw new TypeError(`${op}: storage must be a Storage, got ${describeValue(storage)}`);
    if (!storage.alive) throw new Error(`${op}: its storage was already freed`);
    assertDType(dtype, op);
    checkView(shape as Shape, strides, offset, Math.floor(storage.bytes / DTYPE_BYTES[dtype]), op);
  }

  /** A fresh, uninitialised contiguous tensor. */
  static empty(shape: Shape, dtype: DType = 'float32', device?: string): Tensor {
    const n = checkedNumel(shape, 'empty');
    Tensor.checkAllocation(n, dtype, device, 'empty');
    const storage = Storage.allocate(getEngine(device), n * DTYPE_BYTES[dtype], 'empty');
    try {
      return new Tensor(storage, shape, dtype);
    } catch (e) {
      storage.release();
      throw e;
    }
  }

  /**
   * Throws when a tensor of `count` elements of `dtype` cannot exist on `device`; for ops that build the
   * values on the host first, so an impossible request fails before any host memory is spent.
   */
  static checkAllocation(count: number, dtype: DType, device: string | undefined, op: string): void {
    assertDType(dtype, op);
    Storage.checkSize(getEngine(device), count * DTYPE_BYTES[dtype], op);
  }

  /** Uploads host values (numbers, or a typed array) into a new tensor. */
  static fromArray(values: ArrayLike<number>, shape: Shape, dtype: DType = 'float32', device?: string): Tensor {
    const n = checkedNumel(shape, 'tensor');
    if (values === null || typeof values !== 'object' || !Number.isSafeInteger(values.length)) {
      throw new TypeError(`tensor: values must be an array or typed array of numbers, got ${describeValue(values)}`);
    }
    if (Array.isArray(values)) {
      // Typed arrays hold numbers by construction; a plain array could hold anything, which would upload as NaN.
      const bad = values.findIndex((v) => typeof v !== 'number');
      if (bad >= 0) throw new TypeError(`tensor: value ${bad} is ${describeValue(values[bad])}, not a number`);
    }
    if (values.length !== n) {
      throw new RangeError(`tensor: ${values.length} values do not fill shape ${formatShape(shape)} (${n} elements)`);
    }
    const t = Tensor.empty(shape, dtype, device);
    const raw = encodeHost(dtype, values);
    if (n > 0) t.engine.upload(t.storage.handle, 0, raw);
    if (raw instanceof Int32Array) rememberHostInts(t, raw, raw === values);
    return t;
  }

  get engine(): Engine {
    return this.storage.engine;
  }

  get device(): string {
    return this.storage.engine.device;
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return numel(this.shape);
  }

  get isDisposed(): boolean {
    return this.disposedFlag;
  }

  isContiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expected) return false;
      expected *= this.shape[i]!;
    }
    return true;
  }

  /** Throws if disposed; `op` and `arg` name the caller in the message. */
  assertAlive(op: string, arg = 'input'): void {
    if (this.disposedFlag) {
      throw new Error(
        `${op}: argument '${arg}'${this.name ? ` (${this.name})` : ''} of shape ${formatShape(this.shape)} was ` +
          `already disposed`,
      );
    }
  }

  /** Kernel view of a contiguous tensor. */
  dense(op = 'kernel'): Dense {
    this.assertAlive(op);
    if (!this.isContiguous()) throw new Error(`internal: ${op} needs a contiguous tensor`);
    return { handle: this.storage.handle, offset: this.offset, dtype: this.dtype };
  }

  strided(op = 'kernel'): Strided {
    this.assertAlive(op);
    return { handle: this.storage.handle, offset: this.offset, dtype: this.dtype, strides: this.strides };
  }

  /** A new view of the same storage. */
  view(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    this.assertAlive('view');
    Tensor.checkLayout(this.storage, shape, this.dtype, strides, offset, 'view');
    return new Tensor(this.storage, shape, this.dtype, strides, offset);
  }

  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    untrackTensor(this);
    this.storage.release();
    this.gradFn = null;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** Takes this tensor out of every scope: the caller now disposes it. */
  keep(): this {
    untrackTensor(this);
    return this;
  }

  /** Copies the elements to the host in row-major order (half types widen to float32). */
  toArray(): HostArray {
    this.assertAlive('toArray');
    const c = this.isContiguous() ? this : ops.contiguous(this);
    try {
      const bytes = c.size * DTYPE_BYTES[c.dtype];
      const raw =
        bytes === 0 ? new ArrayBuffer(0) : c.engine.download(c.storage.handle, c.offset * DTYPE_BYTES[c.dtype], bytes);
      return decodeHost(c.dtype, raw, c.size);
    } finally {
      if (c !== this) c.dispose();
    }
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new RangeError(`item: tensor of shape ${formatShape(this.shape)} has ${this.size} elements, not 1`);
    return this.toArray()[0]!;
  }

  toString(): string {
    return (
      `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device}` +
      `${this.requiresGrad ? ', requiresGrad' : ''})`
    );
  }

  // Autograd
  backward(grad?: Tensor): void {
    ops.backward(this, grad);
  }

  detach(): Tensor {
    return this.view(this.shape, this.strides, this.offset);
  }

  /** Marks this leaf as trainable. */
  requireGrad(flag = true): this {
    if (this.gradFn) throw new Error('requireGrad: only leaf tensors can be marked trainable');
    this.requiresGrad = flag;
    return this;
  }

  // Shorthands for the functional ops in src/ops.
  add(o: Tensor | number): Tensor {
    return ops.add(this, o);
  }
  sub(o: Tensor | number): Tensor {
    return ops.sub(this, o);
  }
  mul(o: Tensor | number): Tensor {
    return ops.mul(this, o);
  }
  div(o: Tensor | number): Tensor {
    return ops.div(this, o);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  matmul(o: Tensor): Tensor {
    return ops.matmul(this, o);
  }
  reshape(shape: readonly number[]): Tensor {
    return ops.reshape(this, shape);
  }
  transpose(a = -2, b = -1): Tensor {
    return ops.transpose(this, a, b);
  }
  permute(order: readonly number[]): Tensor {
    return ops.permute(this, order);
  }
  narrow(axis: number, start: number, length: number): Tensor {
    return ops.narrow(this, axis, start, length);
  }
  expand(shape: readonly number[]): Tensor {
    return ops.expand(this, shape);
  }
  contiguous(): Tensor {
    return ops.contiguous(this);
  }
  sum(axes?: number | readonly number[], keepDims = false): Tensor {
    return ops.sum(this, axes, keepDims);
  }
  mean(axes?: number | readonly number[], keepDims = false): Tensor {
    return ops.mean(this, axes, keepDims);
  }
  max(axes?: number | readonly number[], keepDims = false): Tensor {
    return ops.max(this, axes, keepDims);
  }
  to(dtypeOrDevice: string): Tensor {
    return ops.to(this, dtypeOrDevice);
  }
}

setTensorPredicate((v: unknown): v is Tensor => v instanceof Tensor);
