/**
 * Token shift (spec "Token shift"): the features are split into shifts + 1 chunks of
 * floor(dim / (shifts + 1)); chunk k at position t comes from position t − k (zeros before the
 * start, and — for packed sequences — zeros when t − k lies in another document). The remainder
 * features are left as they are.
 *
 * `shiftTokens` is one engine kernel each way (Engine.tokenShift; native/fused/token_shift/);
 * `shiftTokensComposed` builds the same values from strided engine copies and fills, the reference the
 * tests hold the kernels to.
 */
import { Tensor } from '../../tensor/tensor.js';
import type { Strided } from '../../engine/engine.js';
import { record } from '../../autograd/tape.js';
import { emptyLike } from '../util.js';
import { contiguousRaw } from '../raw.js';

function validate(x: Tensor, shifts: number, segments: Int32Array | null): [number, number, number] {
  if (!Number.isInteger(shifts) || shifts < 0 || shifts > 2 ** 31 - 1) {
    throw new RangeError(
      `shiftTokens: shifts must be an integer ≥ 0, got ${shifts} (at most 2^31 − 1: the kernels take an int32)`,
    );
  }
  if (x.rank !== 3) throw new RangeError(`shiftTokens: x must be [batch, n, dim], got [${x.shape.join(', ')}]`);
  const [batch, n, dim] = x.shape as [number, number, number];
  if (segments && segments.length !== batch * n) {
    throw new RangeError(`shiftTokens: ${segments.length} segment ids for [batch, n] = [${batch}, ${n}]`);
  }
  return [batch, n, dim];
}

/** The segment ids as a contiguous int32 tensor on x's device: `deviceSegments` when it is one, else an upload. */
function segmentsOn(x: Tensor, segments: Int32Array, deviceSegments: Tensor | null): Tensor {
  const usable =
    deviceSegments !== null &&
    deviceSegments.device === x.device &&
    deviceSegments.dtype === 'int32' &&
    deviceSegments.isContiguous() &&
    deviceSegments.size === segments.length;
  return usable ? deviceSegments : Tensor.fromArray(segments, [segments.length], 'int32', x.device);
}

/**
 * x [batch, n, dim]; `segments` (host, [batch, n]) stops shifts across document boundaries. `deviceSegments`, the
 * same ids as an int32 tensor on x's device, saves their upload.
 */
export function shiftTokens(
  x: Tensor,
  shifts: number,
  segments: Int32Array | null = null,
  deviceSegments: Tensor | null = null,
): Tensor {
  if (shifts === 0) return x;
  x.assertAlive('shiftTokens', 'x');
  const [batch, n, dim] = validate(x, shifts, segments);
  const ids = segments ? segmentsOn(x, segments, deviceSegments) : null;
  const src = x.isContiguous() ? x : contiguousRaw(x);
  const out = emptyLike(x);
  if (out.size > 0)
    x.engine.tokenShift(
      src.dense('shiftTokens'),
      out.dense(),
      batch,
      n,
      dim,
      shifts,
      false,
      false,
      ids?.dense('shiftTokens') ?? null,
    );
  if (src !== x) src.dispose();
  // x usually also feeds a residual whose gradient arrives first: the kernel adds into it (no separate add).
  return record(out, 'shiftTokens', [x], (g, into) => {
    const gc = g.isContiguous() ? g : contiguousRaw(g);
    const held = into[0];
    const gx = held ?? emptyLike(x);
    if (gx.size > 0)
      x.engine.tokenShift(
        gc.dense('shiftTokens'),
        gx.dense(),
        batch,
        n,
        dim,
        shifts,
        true,
        held !== undefined,
        ids?.dense('shiftTokens backward') ?? null,
      );
    if (gc !== g) gc.dispose();
    return [gx];
  });
}

/** A [rows, length, width] window of a contiguous [batch, n, dim] tensor, as engine strides. */
function window(
  t: Tensor,
  row: number,
  rows: number,
  start: number,
  length: number,
  feature: number,
  width: number,
): { view: Strided; shape: number[] } {
  const [, n, dim] = t.shape as [number, number, number];
  return {
    view: {
      handle: t.storage.handle,
      dtype: t.dtype,
      offset: t.offset + (row * n + start) * dim + feature,
      strides: [n * dim, dim, 1],
    },
    shape: [rows, length, width],
  };
}

/** Zeroes a window: a fill when it is one contiguous run (one row), else a copy of a broadcast zero. */
function zeroWindow(t: Tensor, w: { view: Strided; shape: number[] }): void {
  const [rows, length, width] = w.shape as [number, number, number];
  if (rows === 0 || length === 0 || width === 0) return;
  if (rows * length === 1) {
    t.engine.fill({ handle: w.view.handle, offset: w.view.offset, dtype: w.view.dtype }, width, 0);
    return;
  }
  const zero = Tensor.empty([1], t.dtype, t.device);
  t.engine.fill(zero.dense(), 1, 0);
  t.engine.copy({ ...zero.strided(), strides: [0, 0, 0] }, w.view, w.shape);
  zero.dispose();
}

/** Copies the features no chunk shifts (chunk 0 and the remainder past the last chunk) from src to dst. */
function copyUnshifted(src: Tensor, dst: Tensor, shifts: number, chunk: number): void {
  const [batch, n, dim] = src.shape as [number, number, number];
  const pieces: [number, number][] = [
    [0, chunk],
    [(shifts + 1) * chunk, dim - (shifts + 1) * chunk],
  ];
  for (const [feature, width] of pieces) {
    if (width <= 0 || n === 0 || batch === 0) continue;
    const from = window(src, 0, batch, 0, n, feature, width),
      to = window(dst, 0, batch, 0, n, feature, width);
    src.engine.copy(from.view, to.view, to.shape);
  }
}

/** Positions t (per row) where chunk k must be zero because t − k is in another document. */
function boundaries(segments: Int32Array, batch: number, n: number, k: number): [number, number][] {
  const out: [number, number][] = [];
  for (let b = 0; b < batch; b++)
    for (let t = k; t < n; t++) if (segments[b * n + t] !== segments[b * n + t - k]) out.push([b, t]);
  return out;
}

/**
 * `shiftTokens` composed of strided engine copies and fills (the unshifted features, then each shifted chunk from its
 * source).
 */
export function shiftTokensComposed(x: Tensor, shifts: number, segments: Int32Array | null = null): Tensor {
  if (shifts === 0) return x;
  x.assertAlive('shiftTokens', 'x');
  const [batch, n, dim] = validate(x, shifts, segments);
  const chunk = Math.floor(dim / (shifts + 1));
  // With empty chunks (shifts ≥ dim) nothing moves: loop over none of them rather than over `shifts` empty ones.
  const moved = chunk > 0 ? shifts : 0;
  const src = x.isContiguous() ? x : contiguousRaw(x);
  const out = emptyLike(x);
  const cuts = segments
    ? Array.from({ length: moved + 1 }, (_, k) => (k === 0 ? [] : boundaries(segments, batch, n, k)))
    : null;
  if (out.size > 0) {
    copyUnshifted(src, out, shifts, chunk);
    for (let k = 1; k <= moved; k++) {
      const kept = Math.max(n - k, 0);
      const from = window(src, 0, batch, 0, kept, k * chunk, chunk),
        to = window(out, 0, batch, n - kept, kept, k * chunk, chunk);
      if (kept > 0) x.engine.copy(from.view, to.view, to.shape);
      zeroWindow(out, window(out, 0, batch, 0, n - kept, k * chunk, chunk));
      for (const [b, t] of cuts?.[k] ?? []) zeroWindow(out, window(out, b, 1, t, 1, k * chunk, chunk));
    }
  }
  if (src !== x) src.dispose();
  return record(out, 'shiftTokens', [x], (g) => {
    const gc = g.isContiguous() ? g : contiguousRaw(g);
    const gx = emptyLike(x);
    if (gx.size > 0) {
      copyUnshifted(gc, gx, shifts, chunk);
      for (let k = 1; k <= moved; k++) {
        const kept = Math.max(n - k, 0);
        // Output row t of chunk k came from input row t − k, except where it was zeroed.
        const from = window(gc, 0, batch, n - kept, kept, k * chunk, chunk),
          to = window(gx, 0, batch, 0, kept, k * chunk, chunk);
        if (kept > 0) x.engine.copy(from.view, to.view, to.shape);
        zeroWindow(gx, window(gx, 0, batch, kept, n - kept, k * chunk, chunk));
        for (const [b, t] of cuts?.[k] ?? []) zeroWindow(gx, window(gx, b, 1, t - k, 1, k * chunk, chunk));
      }
    }
    if (gc !== g) gc.dispose();
    return [gx];
  });
}
