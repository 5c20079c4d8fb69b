// Shared pieces of the GPU tests: skipping (visibly) without a GPU, failing instead when
// ANDROMEDA_REQUIRE_GPU=1, and twin buffers that run one kernel call on the CPU and CUDA engines
// with identical inputs so the outputs can be compared.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  getEngine,
  deviceUnavailableReason,
  type Engine,
  type Dense,
  type MatmulArgs,
  type Strided,
} from '../../src/engine/index.js';
import { DTYPE_BYTES, decodeHost, encodeHost, type DType, type HostArray } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import type { CudaEngine } from '../../src/engine/cuda.js';

export const requireGpu = process.env.ANDROMEDA_REQUIRE_GPU === '1';
export const gpuUnavailable: string | null = deviceUnavailableReason('cuda');

/** A node:test test that needs the GPU: skipped with the reason when there is none, failed when one is required. */
export function gpuTest(name: string, fn: () => void | Promise<void>): void {
  if (gpuUnavailable === null) {
    test(name, fn);
  } else if (requireGpu) {
    test(name, () => {
      throw new Error(`ANDROMEDA_REQUIRE_GPU=1 but ${gpuUnavailable}`);
    });
  } else {
    test(name, { skip: gpuUnavailable }, () => {});
  }
}

export function cpu(): Engine {
  return getEngine('cpu');
}
export function gpu(): Engine {
  return getEngine('cuda');
}

/** A Hopper GPU (compute capability 9.x) is present. */
export function isHopper(): boolean {
  return gpuUnavailable === null && /\(sm_9\d/.test((gpu() as CudaEngine).description);
}
/** Why a Hopper-only test is skipped on this machine's GPU, or null (Hopper, or no GPU: gpuTest says so). */
export function notHopperReason(): string | null {
  return gpuUnavailable === null && !isHopper() ? `not a Hopper GPU: ${(gpu() as CudaEngine).description}` : null;
}

/** Device buffers of one engine for a test, uploaded from host values; `dispose` frees them all. */
export class DeviceBuffers {
  private readonly handles: number[] = [];
  constructor(private readonly engine: Engine = gpu()) {}
  put(values: ArrayLike<number>, dtype: DType): Dense {
    const handle = this.engine.alloc(Math.max(16, values.length * DTYPE_BYTES[dtype]));
    this.handles.push(handle);
    if (values.length) this.engine.upload(handle, 0, encodeHost(dtype, values));
    return { handle, offset: 0, dtype };
  }
  /** NaN-filled (poisoned) output. */
  output(count: number, dtype: DType): Dense {
    return this.put(new Float64Array(count).fill(NaN), dtype);
  }
  get(d: Dense, count: number): Float64Array {
    return Float64Array.from(
      decodeHost(d.dtype, this.engine.download(d.handle, 0, count * DTYPE_BYTES[d.dtype]), count),
    );
  }
  dispose(): void {
    for (const h of this.handles.splice(0)) this.engine.free(h);
  }
}

/** The same logical buffer on both engines. */
export interface Twin {
  readonly dtype: DType;
  readonly count: number;
  readonly cpu: Dense;
  readonly gpu: Dense;
}

/** Owns twin buffers for one test; `dispose` frees them on both engines. */
export class Twins {
  private readonly owned: { engine: Engine; handle: number }[] = [];
  readonly gen: Generator;

  constructor(seed: number) {
    this.gen = new Generator(seed);
  }

  private allocate(dtype: DType, count: number): { c: number; g: number } {
    const bytes = Math.max(1, count) * DTYPE_BYTES[dtype];
    const c = cpu().alloc(bytes),
      g = gpu().alloc(bytes);
    this.owned.push({ engine: cpu(), handle: c }, { engine: gpu(), handle: g });
    return { c, g };
  }

  /** Twins holding `values`. */
  from(dtype: DType, values: ArrayLike<number>): Twin {
    const { c, g } = this.allocate(dtype, values.length);
    const raw = encodeHost(dtype, values);
    if (values.length) {
      cpu().upload(c, 0, raw);
      gpu().upload(g, 0, raw);
    }
    return { dtype, count: values.length, cpu: { handle: c, offset: 0, dtype }, gpu: { handle: g, offset: 0, dtype } };
  }

  /** Twins of normal(offset, scale) values (rounded to the dtype, so both engines see the same numbers). */
  random(dtype: DType, count: number, scale = 1, offset = 0): Twin {
    const v = new Float64Array(count);
    for (let i = 0; i < count; i++) v[i] = offset + scale * this.gen.normal();
    return this.from(dtype, v);
  }

  /** Uninitialised output twins, poisoned (NaN for floats) so unwritten elements show. */
  output(dtype: DType, count: number): Twin {
    return this.from(dtype, new Array<number>(count).fill(dtype === 'int32' ? -12345 : NaN));
  }

  ints(count: number, low: number, high: number): Twin {
    const v = new Int32Array(count);
    for (let i = 0; i < count; i++) v[i] = low + Math.floor(this.gen.uniform() * (high - low));
    return this.from('int32', v);
  }

  dispose(): void {
    for (const { engine, handle } of this.owned) engine.free(handle);
    this.owned.length = 0;
  }
}

export function strided(d: Dense, strides: readonly number[]): Strided {
  return { ...d, strides };
}

export function read(t: Twin, count = t.count): { cpu: HostArray; gpu: HostArray } {
  const bytes = count * DTYPE_BYTES[t.dtype];
  const off = (d: Dense) => d.offset * DTYPE_BYTES[d.dtype];
  return {
    cpu: decodeHost(t.dtype, cpu().download(t.cpu.handle, off(t.cpu), bytes), count),
    gpu: decodeHost(t.dtype, gpu().download(t.gpu.handle, off(t.gpu), bytes), count),
  };
}

/** ‖gpu − cpu‖ / ‖cpu‖ over elements where the CPU value is finite; non-finite values must agree exactly. */
export function relativeError(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!,
      g = got[i]!;
    if (!Number.isFinite(r)) {
      if (!Object.is(r, g) && !(Number.isNaN(r) && Number.isNaN(g))) return Infinity;
      continue;
    }
    if (!Number.isFinite(g)) return Infinity;
    num += (g - r) ** 2;
    den += r * r;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** Tolerance for comparing the engines in a dtype (both compute half types in float). */
export function tolerance(dtype: DType): number {
  switch (dtype) {
    case 'float64':
      return 1e-12;
    case 'float32':
      return 1e-5;
    case 'int32':
      return 0;
    default:
      return 1e-2;
  }
}

export function assertClose(what: string, t: Twin, tol = tolerance(t.dtype), count = t.count): void {
  const { cpu: c, gpu: g } = read(t, count);
  const err = relativeError(c, g);
  assert.ok(
    err <= tol,
    `${what} (${t.dtype}, ${count} elements): relative error ${err.toExponential(2)} > ${tol.toExponential(1)}` +
      `; first values cpu [${Array.from(c.slice(0, 4)).map((x) => x.toPrecision(5))}] gpu [` +
      `${Array.from(g.slice(0, 4)).map((x) => x.toPrecision(5))}]`,
  );
}

export const FLOAT_DTYPES: readonly DType[] = ['float32', 'bfloat16'];

/** The MatmulArgs of a linear layer's product: C[m, n] = alpha · A[m, k] · B[n, k]ᵀ, one batch, row-major, beta 0. */
export function linearProductArgs(o: {
  a: Dense;
  b: Dense;
  c: Dense;
  m: number;
  n: number;
  k: number;
  /** Row stride of A (default k). */
  lda?: number;
  alpha?: number;
}): MatmulArgs {
  const { a, b, c, m, n, k } = o;
  const common = { transA: false, transB: true, ldb: k, ldc: n, strideA: 0, strideB: 0, strideC: 0, batch: 1 };
  return { a, b, c, m, n, k, ...common, lda: o.lda ?? k, alpha: o.alpha ?? 1, beta: 0 };
}
