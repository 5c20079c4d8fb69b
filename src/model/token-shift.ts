/**
 * Token shift (spec "Token shift"): the features are split into shifts + 1 chunks of
 * floor(dim / (shifts + 1)); chunk k at position t comes from position t − k (zeros before the
 * start, and — for packed sequences — zeros when t − k lies in another document). The remainder
 * features are left as they are.
 *
 * One op with its own gradient: one engine kernel each way where the engine has it (Engine.tokenShift; with
 * document boundaries it needs the segment ids on the device), else strided engine copies (the unshifted features, then each shifted chunk from its
 * source), instead of narrow/pad/concat with their temporaries.
 */
import { Tensor } from '../tensor/tensor.js';
import type { Strided } from '../engine/engine.js';
import { record } from '../autograd/tape.js';
import { concat, narrow } from '../ops/layout.js';
import { emptyLike } from '../ops/util.js';
import { contiguousRaw } from '../ops/raw.js';

/** A [rows, length, width] window of a contiguous [batch, n, dim] tensor, as engine strides. */
function window(t: Tensor, row: number, rows: number, start: number, length: number, feature: number, width: number): { view: Strided; shape: number[] } {
  const [, n, dim] = t.shape as [number, number, number];
  return {
    view: { handle: t.storage.handle, dtype: t.dtype, offset: t.offset + (row * n + start) * dim + feature, strides: [n * dim, dim, 1] },
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
  const pieces: [number, number][] = [[0, chunk], [(shifts + 1) * chunk, dim - (shifts + 1) * chunk]];
  for (const [feature, width] of pieces) {
    if (width <= 0 || n === 0 || batch === 0) continue;
    const from = window(src, 0, batch, 0, n, feature, width), to = window(dst, 0, batch, 0, n, feature, width);
    src.engine.copy(from.view, to.view, to.shape);
  }
}

/** Positions t (per row) where chunk k must be zero because t − k is in another document. */
function boundaries(segments: Int32Array, batch: number, n: number, k: number): [number, number][] {
  const out: [number, number][] = [];
  for (let b = 0; b < batch; b++) for (let t = k; t < n; t++) if (segments[b * n + t] !== segments[b * n + t - k]) out.push([b, t]);
  return out;
}

/** The engine's one-pass kernel, each way; `segments` (device, int32 [batch, n]) stops shifts at document boundaries. */
function fusedShift(x: Tensor, src: Tensor, out: Tensor, shifts: number, segments: Tensor | null): Tensor {
  const [batch, n, dim] = x.shape as [number, number, number];
  const ids = segments?.dense('shiftTokens') ?? null;
  if (out.size > 0) x.engine.tokenShift!(src.dense('shiftTokens'), out.dense(), batch, n, dim, shifts, false, false, ids);
  if (src !== x) src.dispose();
  // x usually also feeds a residual whose gradient arrives first: the kernel adds into it (no separate add).
  return record(out, 'shiftTokens', [x], (g, into) => {
    const gc = g.isContiguous() ? g : contiguousRaw(g);
    const held = into[0];
    const gx = held ?? emptyLike(x);
    if (gx.size > 0) x.engine.tokenShift!(gc.dense('shiftTokens'), gx.dense(), batch, n, dim, shifts, true, held !== undefined, segments?.dense('shiftTokens backward') ?? null);
    if (gc !== g) gc.dispose();
    return [gx];
  });
}

/**
 * x [batch, n, dim]; `segments` (host, [batch, n]) stops shifts across document boundaries. `deviceSegments`, the
 * same ids as an int32 tensor on x's device, lets an engine with the one-pass kernel take packed documents too.
 */
export function shiftTokens(x: Tensor, shifts: number, segments: Int32Array | null = null, deviceSegments: Tensor | null = null): Tensor {
  if (shifts === 0) return x;
  x.assertAlive('shiftTokens', 'x');
  const [batch, n, dim] = x.shape as [number, number, number];
  const chunk = Math.floor(dim / (shifts + 1));
  const src = x.isContiguous() ? x : contiguousRaw(x);
  const out = emptyLike(x);
  if (x.engine.tokenShift) {
    const ids = segments ? deviceSegments : null;
    const usable = ids !== null && ids.device === x.device && ids.dtype === 'int32' && ids.isContiguous() && ids.size === batch * n;
    if (!segments || usable) return fusedShift(x, src, out, shifts, ids);
  }
  const cuts = segments ? Array.from({ length: shifts + 1 }, (_, k) => (k === 0 ? [] : boundaries(segments, batch, n, k))) : null;
  if (out.size > 0) {
    src.assertAlive('shiftTokens', 'x');
    copyUnshifted(src, out, shifts, chunk);
    for (let k = 1; k <= shifts; k++) {
      const kept = Math.max(n - k, 0);
      const from = window(src, 0, batch, 0, kept, k * chunk, chunk), to = window(out, 0, batch, n - kept, kept, k * chunk, chunk);
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
      for (let k = 1; k <= shifts; k++) {
        const kept = Math.max(n - k, 0);
        // Output row t of chunk k came from input row t − k, except where it was zeroed.
        const from = window(gc, 0, batch, n - kept, kept, k * chunk, chunk), to = window(gx, 0, batch, 0, kept, k * chunk, chunk);
        if (kept > 0) x.engine.copy(from.view, to.view, to.shape);
        zeroWindow(gx, window(gx, 0, batch, kept, n - kept, k * chunk, chunk));
        for (const [b, t] of cuts?.[k] ?? []) zeroWindow(gx, window(gx, b, 1, t - k, 1, k * chunk, chunk));
      }
    }
    if (gc !== g) gc.dispose();
    return [gx];
  });
}

/**
 * Token shift while decoding with a cache: `history` [batch, shifts, dim] holds the inputs of the
 * previous `shifts` positions (zeros before the start). Returns the shifted x and the new history.
 */
export function shiftTokensWithHistory(x: Tensor, shifts: number, history: Tensor): { shifted: Tensor; history: Tensor } {
  const n = x.shape[1]!;
  const extended = concat([history, x], 1);
  const shiftedAll = shiftTokens(extended, shifts);
  const shifted = narrow(shiftedAll, 1, shifts, n);
  const next = narrow(extended, 1, n, shifts).contiguous();
  return { shifted, history: next };
}
