// Attention as Andromeda defines it (docs: shared/spec/andromeda-model.md, "Attention"), as one op:
// per-head key scale, rotary with relative xPos, scale, ALiBi, causal and per-document masks,
// softmax, and the weighted sum of values. Engines with a fused kernel (Engine.attentionForward)
// run it in O(n) memory; otherwise a reference composition computes it exactly, in O(n²) memory, with
// gradients through the ordinary ops: matmuls around the engine's maskedSoftmax (ALiBi and masks added
// in the kernel) and rotary (rotary + xPos) kernels, so nothing n × n is built on the host.
// A sliding window (Mistral's) is not among the fused kernels' masks: windowed attention always takes the
// reference composition, with the window added to the scores as a −∞ mask of [queries, keys] per query
// block (built on the host), so its cost is the reference path's O(n²) memory. Logit soft-capping (Gemma 2's
// scores → cap · tanh(scores / cap)) is not in the fused kernels either and likewise takes the reference path.
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { formatShape } from '../tensor/shape.js';
import type { AttentionArgs, Dense } from '../engine/engine.js';
import { record } from '../autograd/tape.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';
import { concat, narrow, permute, reshape, transpose } from './layout.js';
import { add, mul, tanh } from './elementwise.js';
import { matmul } from './matmul.js';
import { zeros } from './creation.js';
import { maskedSoftmax } from './masked-softmax.js';
import { rotary } from './rotary.js';
import type { TokenRows } from './token-rows.js';
import { documentPositionsAreIndexShifts } from './attention-document-positions.js';

/** Per-token int32 values for a [batch, length] sequence: host values, a device tensor, or both. */
export type TokenIndexInput = Int32Array | Tensor | { readonly host: Int32Array; readonly device: Tensor };

export interface AttentionRotary {
  /** Number of rotated features at the start of each head (even, ≤ head dim). */
  readonly dim: number;
  /** dim / 2 inverse frequencies (interpolation and base rescaling already folded in). */
  readonly invFreq: ArrayLike<number>;
  /** xPos scale base B (spec: 512); 0 or absent turns xPos off. */
  readonly xposScaleBase?: number;
}

export interface AttentionOptions {
  /** Multiplies q·k before ALiBi (dim_head^-0.5, or the qk-norm scale). */
  readonly scale: number;
  /** Mask keys after each query. Default true. */
  readonly causal?: boolean;
  /** Index of query 0 among the keys; default keyLen − queryLen (the queries are the last keys). */
  readonly queryOffset?: number;
  /** [heads, headDim] per-head key scale (qk-norm dim scale); with one KV head the key becomes per-head. */
  readonly keyScale?: Tensor | null;
  readonly rotary?: AttentionRotary | null;
  /** One slope per query head, 0 for heads without ALiBi. */
  readonly alibiSlopes?: ArrayLike<number> | null;
  /** Positions for rotary, xPos and ALiBi; default queryOffset + i for queries and j for keys. */
  readonly queryPositions?: TokenIndexInput | null;
  readonly keyPositions?: TokenIndexInput | null;
  /**
   * Sliding window W: query i (index queryOffset + i among the keys) sees only keys j with
   * queryOffset + i − j < W, i.e. itself and the W − 1 keys before it. Needs causal attention; runs on the
   * reference path. Null or absent: no window.
   */
  readonly window?: number | null;
  /**
   * Logit soft-cap: the scaled scores become cap · tanh(scores / cap) before ALiBi, the masks and the softmax
   * (Gemma 2's attn_logit_softcapping). Runs on the reference path. Null or absent: none.
   */
  readonly softCap?: number | null;
  /** Document ids: a query attends only to keys of the same id. */
  readonly querySegments?: TokenIndexInput | null;
  readonly keySegments?: TokenIndexInput | null;
  /**
   * 'auto' (default): the fused kernel when the dtype is not float64 and the engine's kernels take the head
   * shape (Engine.fusedAttentionUnsupported), else the reference composition.
   */
  readonly implementation?: 'auto' | 'fused' | 'reference';
}

interface Problem {
  batch: number;
  heads: number;
  kvHeads: number;
  queryLen: number;
  keyLen: number;
  headDim: number;
  queryOffset: number;
  causal: boolean;
  scale: number;
  rotaryDim: number;
  invFreq: Float64Array | null;
  xposScaleBase: number;
  slopes: Float64Array | null;
  keyScale: Tensor | null;
  queryPositions: TokenIndexInput | null;
  keyPositions: TokenIndexInput | null;
  querySegments: TokenIndexInput | null;
  keySegments: TokenIndexInput | null;
  window: number | null;
  softCap: number | null;
}

/**
 * q [batch, heads, queryLen, headDim], k and v [batch, kvHeads, keyLen, headDim] → [batch, heads,
 * queryLen, headDim]. Query head h reads KV head h mod kvHeads (the x-transformers grouping).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
  const p = validate(q, k, v, options);
  const implementation = options.implementation ?? 'auto';
  if (p.window !== null && implementation === 'fused')
    throw new RangeError('attention: the fused kernels have no sliding window; use the reference implementation');
  if (p.softCap !== null && implementation === 'fused')
    throw new RangeError('attention: the fused kernels have no logit soft-cap; use the reference implementation');
  const useFused =
    p.window === null &&
    p.softCap === null &&
    (implementation === 'fused' ||
      (implementation === 'auto' &&
        q.dtype !== 'float64' &&
        q.engine.fusedAttentionUnsupported({
          kernel: 'dense',
          heads: p.heads,
          headDim: p.headDim,
          rotaryDim: p.rotaryDim,
          alibi: p.slopes !== null,
        }) === null));
  return useFused ? fusedAttention(q, k, v, p) : referenceAttention(q, k, v, p);
}

function validate(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Problem {
  const op = 'attention';
  const named: Record<string, Tensor> = { q, k, v };
  if (o.keyScale) named.keyScale = o.keyScale;
  assertSameDevice(op, named);
  assertSameDType(op, named);
  assertFloat(op, 'q', q);
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
    throw new RangeError(
      `attention: q, k and v must be [batch, heads, length, headDim], ` +
        `got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`,
    );
  }
  const [batch, heads, queryLen, headDim] = q.shape as [number, number, number, number];
  const [kb, kvHeads, keyLen, kd] = k.shape as [number, number, number, number];
  if (kb !== batch || kd !== headDim || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new RangeError(
      `attention: k ${formatShape(k.shape)} and v ${formatShape(v.shape)} must both be [${batch}, kvHeads, ` +
        `keyLen, ${headDim}] for q ${formatShape(q.shape)}`,
    );
  }
  if (kvHeads < 1 || heads % kvHeads !== 0)
    throw new RangeError(`attention: ${heads} query heads are not a multiple of ${kvHeads} key/value heads`);
  const causal = o.causal ?? true;
  const queryOffset = o.queryOffset ?? keyLen - queryLen;
  if (!Number.isInteger(queryOffset)) throw new RangeError(`attention: queryOffset ${queryOffset} must be an integer`);
  if (!Number.isFinite(o.scale)) throw new RangeError(`attention: scale ${o.scale} must be a finite number`);
  const keyScale = o.keyScale ?? null;
  if (keyScale) {
    if (keyScale.rank !== 2 || keyScale.shape[0] !== heads || keyScale.shape[1] !== headDim) {
      throw new RangeError(`attention: keyScale must be [${heads}, ${headDim}], got ${formatShape(keyScale.shape)}`);
    }
    if (kvHeads !== 1 && kvHeads !== heads) {
      throw new RangeError(
        `attention: a per-head key scale needs one KV head or one per query head, got ${kvHeads} KV heads ` +
          `for ${heads} heads`,
      );
    }
  }
  let rotaryDim = 0,
    invFreq: Float64Array | null = null,
    xposScaleBase = 0;
  if (o.rotary && o.rotary.dim > 0) {
    rotaryDim = o.rotary.dim;
    if (!Number.isInteger(rotaryDim) || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
      throw new RangeError(`attention: rotary dim ${rotaryDim} must be even and at most the head dim ${headDim}`);
    }
    if (o.rotary.invFreq.length !== rotaryDim / 2)
      throw new RangeError(
        `attention: rotary needs ${rotaryDim / 2} inverse frequencies, got ${o.rotary.invFreq.length}`,
      );
    invFreq = Float64Array.from(o.rotary.invFreq);
    xposScaleBase = o.rotary.xposScaleBase ?? 0;
    if (xposScaleBase < 0 || !Number.isFinite(xposScaleBase))
      throw new RangeError(`attention: xPos scale base ${xposScaleBase} must be positive (or 0 for none)`);
    if (xposScaleBase > 0 && !causal)
      throw new RangeError(
        'attention: xPos needs causal attention (its relative factor grows without bound for keys after the query)',
      );
  }
  let slopes: Float64Array | null = null;
  if (o.alibiSlopes) {
    if (o.alibiSlopes.length !== heads)
      throw new RangeError(
        `attention: ${o.alibiSlopes.length} ALiBi slopes for ${heads} heads (give 0 for heads without ALiBi)`,
      );
    slopes = Float64Array.from(o.alibiSlopes);
    if (slopes.every((s) => s === 0)) slopes = null;
  }
  const window = o.window ?? null;
  if (window !== null) {
    if (!Number.isInteger(window) || window < 1)
      throw new RangeError(`attention: sliding window ${window} must be a positive integer`);
    if (!causal) throw new RangeError('attention: a sliding window needs causal attention');
  }
  const softCap = o.softCap ?? null;
  if (softCap !== null && !(Number.isFinite(softCap) && softCap > 0))
    throw new RangeError(`attention: logit soft-cap ${softCap} must be a positive number`);
  checkIndices('queryPositions', o.queryPositions, batch, queryLen);
  checkIndices('keyPositions', o.keyPositions, batch, keyLen);
  checkIndices('querySegments', o.querySegments, batch, queryLen);
  checkIndices('keySegments', o.keySegments, batch, keyLen);
  if (!o.querySegments !== !o.keySegments)
    throw new RangeError('attention: give both querySegments and keySegments, or neither');
  return {
    batch,
    heads,
    kvHeads,
    queryLen,
    keyLen,
    headDim,
    queryOffset,
    causal,
    scale: o.scale,
    rotaryDim,
    invFreq,
    xposScaleBase,
    slopes,
    keyScale,
    queryPositions: o.queryPositions ?? null,
    keyPositions: o.keyPositions ?? null,
    querySegments: o.querySegments ?? null,
    keySegments: o.keySegments ?? null,
    window,
    softCap,
  };
}

function checkIndices(name: string, input: TokenIndexInput | null | undefined, batch: number, length: number): void {
  if (!input) return;
  const size = input instanceof Int32Array ? input.length : input instanceof Tensor ? input.size : input.host.length;
  if (input instanceof Tensor && input.dtype !== 'int32')
    throw new TypeError(`attention: ${name} must be int32, got ${input.dtype}`);
  if (size !== batch * length)
    throw new RangeError(`attention: ${name} has ${size} values, expected [${batch}, ${length}]`);
}

function hostIndices(input: TokenIndexInput): Int32Array {
  if (input instanceof Int32Array) return input;
  if (input instanceof Tensor) return input.toArray() as Int32Array;
  return input.host;
}

/** Range of the custom positions when all of them are known on the host (default positions count as q/k indices). */
function hostPositionRange(p: Problem): { min: number; max: number } | null {
  if (!p.queryPositions && !p.keyPositions) return null;
  const known = (
    input: TokenIndexInput | null,
    first: number,
    length: number,
  ): Int32Array | { min: number; max: number } | null => {
    if (!input) return { min: first, max: first + length - 1 };
    if (input instanceof Int32Array) return input;
    if (input instanceof Tensor) return null; // on the device only: finding the range would mean a wait
    return input.host;
  };
  let min = Infinity,
    max = -Infinity;
  for (const part of [known(p.queryPositions, p.queryOffset, p.queryLen), known(p.keyPositions, 0, p.keyLen)]) {
    if (!part) return null;
    if (part instanceof Int32Array) {
      for (const v of part) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    } else {
      min = Math.min(min, part.min);
      max = Math.max(max, part.max);
    }
  }
  return Number.isFinite(min) ? { min, max } : null;
}

// ---------------------------------------------------------------------------------------------
// Fused path

/**
 * The positions the fused kernels get. On CUDA, packed documents whose positions count on from each document's start
 * (attention-document-positions.ts) go as index positions: the same scores on every visible pair, and the engine's
 * fast kernels (Hopper, the pre-pass transform) take index positions only.
 */
function fusedPositions(
  p: Problem,
  device: string,
): { queryPositions: TokenIndexInput | null; keyPositions: TokenIndexInput | null } {
  const given = { queryPositions: p.queryPositions, keyPositions: p.keyPositions };
  if (!device.startsWith('cuda') || !p.querySegments || !p.keySegments) return given;
  if (!p.queryPositions && !p.keyPositions) return given;
  const indexShifts = documentPositionsAreIndexShifts({
    batch: p.batch,
    queryLen: p.queryLen,
    keyLen: p.keyLen,
    queryOffset: p.queryOffset,
    queryPositions: p.queryPositions,
    keyPositions: p.keyPositions,
    querySegments: p.querySegments,
    keySegments: p.keySegments,
  });
  return indexShifts ? { queryPositions: null, keyPositions: null } : given;
}

function fusedAttention(q: Tensor, k: Tensor, v: Tensor, p: Problem): Tensor {
  const engine = q.engine;
  const temps: Tensor[] = [];
  const dense = (t: Tensor): Tensor => {
    if (t.isContiguous()) return t;
    const c = contiguousRaw(t);
    temps.push(c);
    return c;
  };
  const deviceIndices = (input: TokenIndexInput | null): Dense | null => {
    if (!input) return null;
    if (input instanceof Tensor) return dense(input).dense('attention');
    if (input instanceof Int32Array) {
      const t = Tensor.fromArray(input, [input.length], 'int32', q.device);
      temps.push(t);
      return t.dense();
    }
    return dense(input.device).dense('attention');
  };
  const qc = dense(q),
    kc = dense(k),
    vc = dense(v);
  // The contract's key scale is float32, float64 for float64 attention.
  const scaleDType: DType = q.dtype === 'float64' ? 'float64' : 'float32';
  let keyScale32: Tensor | null = null;
  if (p.keyScale) {
    keyScale32 = p.keyScale.dtype === scaleDType ? dense(p.keyScale) : contiguousRaw(p.keyScale, scaleDType);
    if (keyScale32 !== p.keyScale && !temps.includes(keyScale32)) temps.push(keyScale32);
  }
  const positions = fusedPositions(p, q.device);
  const args: AttentionArgs = {
    batch: p.batch,
    heads: p.heads,
    kvHeads: p.kvHeads,
    queryLen: p.queryLen,
    keyLen: p.keyLen,
    headDim: p.headDim,
    scale: p.scale,
    causal: p.causal,
    queryOffset: p.queryOffset,
    alibiSlopes: p.slopes ? Float32Array.from(p.slopes) : null,
    rotaryDim: p.rotaryDim,
    rotaryInvFreq: p.invFreq ? Float32Array.from(p.invFreq) : null,
    xposScaleBase: p.xposScaleBase,
    keyScale: keyScale32 ? keyScale32.dense('attention') : null,
    queryPositions: deviceIndices(positions.queryPositions),
    keyPositions: deviceIndices(positions.keyPositions),
    querySegments: deviceIndices(p.querySegments),
    keySegments: deviceIndices(p.keySegments),
    positionRange: hostPositionRange({ ...p, ...positions }),
  };
  const out = emptyLike(q);
  const lse = Tensor.empty([p.batch, p.heads, p.queryLen], 'float32', q.device);
  if (out.size > 0)
    engine.attentionForward(
      qc.dense('attention'),
      kc.dense('attention'),
      vc.dense('attention'),
      out.dense(),
      lse.dense(),
      args,
    );
  const inputs = p.keyScale ? [q, k, v, p.keyScale] : [q, k, v];
  if (!inputs.some((t) => t.requiresGrad) || !isGradEnabled()) {
    for (const t of temps) t.dispose();
    lse.dispose();
    return out;
  }
  // The saved copies and index tensors live until the scope ends, like every saved tensor.
  return record(out, 'attention', inputs, (g) => {
    const gc = g.isContiguous() ? g : contiguousRaw(g);
    const gq = emptyLike(q),
      gk = emptyLike(k),
      gv = emptyLike(v);
    const gks = p.keyScale ? zeros([p.heads, p.headDim], scaleDType, q.device) : null;
    if (out.size > 0) {
      engine.attentionBackward(
        qc.dense(),
        kc.dense(),
        vc.dense(),
        out.dense(),
        lse.dense(),
        gc.dense(),
        gq.dense(),
        gk.dense(),
        gv.dense(),
        gks ? gks.dense() : null,
        args,
      );
    } else {
      for (const t of [gk, gv]) if (t.size > 0) engine.fill(t.dense(), t.size, 0);
    }
    if (gc !== g) gc.dispose();
    let gScale: Tensor | null = gks;
    if (gks && p.keyScale!.dtype !== scaleDType) {
      gScale = contiguousRaw(gks, p.keyScale!.dtype);
      gks.dispose();
    }
    return p.keyScale ? [gq, gk, gv, gScale] : [gq, gk, gv];
  });
}

// ---------------------------------------------------------------------------------------------
// Reference path

/**
 * Largest natural log of an xPos factor one anchor may give a query or key. Float32 (and bfloat16)
 * hold e^±87; the margin leaves room for the vectors' own size and for the products of masked pairs
 * (up to e^80, which the masked softmax never reads).
 */
const XPOS_MAX_LOG_FACTOR = 40;
/** |ln ζ| of the smallest xPos ζ, 0.4r / 1.4r = 2/7 (feature 0). */
const XPOS_LOG_ZETA_MIN = Math.log(3.5);
/** Query blocks for rows whose positions span more than one anchor serves (as today's long-context fallback). */
const XPOS_QUERY_BLOCK = 256;
/** Largest position spread inside one query block, and the clamp on key exponents (in positions). */
const XPOS_MAX_SPREAD = 1024;

/**
 * The spec's attention in its explicit form: scores = (rotated, xPos-scaled q)·(rotated k)ᵀ, a masked
 * softmax adding ALiBi and the masks in the kernel, then probabilities · v; gradients flow through the
 * ordinary ops (matmul, the masked softmax, the rotary transform, the key-scale product). xPos is
 * applied relatively: queries get ζ^((p − a)/B), keys ζ^((a − p)/B) around an anchor a, which equals
 * the reference ζ^((p_q − p_k)/B) exactly. One anchor serves the whole call while the positions span at
 * most 2·B·40/ln 3.5 (32,696 for B = 512): every factor then stays within e^±40. Beyond that each
 * batch row gets its own anchor, and rows spanning more are cut into query blocks anchored at their
 * first position (keys' exponents clamped at −1024/B: later keys are masked anyway).
 */
function referenceAttention(q: Tensor, k: Tensor, v: Tensor, p: Problem): Tensor {
  const grad = isGradEnabled();
  // Without autograd, intermediates are freed as soon as they are used (inference at long lengths);
  // with it, they stay until the enclosing scope ends (the tape may hold them).
  const drop = (...ts: Tensor[]): void => {
    if (!grad) for (const t of ts) if (!t.gradFn) t.dispose();
  };
  checkEveryQuerySeesAKey(p);
  // Index tensors on the device; uploads made here (host-only inputs) also live until the scope ends
  // when autograd is on: the rotary backward reads the positions.
  const uploads: Tensor[] = [];
  const device = (input: TokenIndexInput | null): Tensor | null => {
    if (!input) return null;
    let t = input instanceof Int32Array ? null : input instanceof Tensor ? input : input.device;
    if (!t) {
      t = Tensor.fromArray(input as Int32Array, [(input as Int32Array).length], 'int32', q.device);
      uploads.push(t);
    } else if (!t.isContiguous()) {
      t = contiguousRaw(t);
      uploads.push(t);
    }
    return t;
  };
  const index = {
    queryPositions: device(p.queryPositions),
    keyPositions: device(p.keyPositions),
    querySegments: device(p.querySegments),
    keySegments: device(p.keySegments),
  };
  const rowsOf = (data: Tensor | null, length: number, batchStart: number, start: number): TokenRows | null =>
    data ? { data, offset: batchStart * length + start, stride: length } : null;

  let keys = k;
  if (p.keyScale) keys = mul(k, reshape(p.keyScale, [1, p.heads, 1, p.headDim]));
  const xpos = p.xposScaleBase > 0;

  const groupOutputs: Tensor[] = [];
  for (const group of planBlocks(p)) {
    const rows = group.batchEnd - group.batchStart;
    const batchRows = (t: Tensor): Tensor => (rows === p.batch ? t : narrow(t, 0, group.batchStart, rows));
    const qg = batchRows(q),
      kg = batchRows(keys),
      vg = batchRows(v);
    const outputs: Tensor[] = [];
    for (const block of group.blocks) {
      const length = block.end - block.start;
      const qb = length === p.queryLen ? qg : narrow(qg, 2, block.start, length);
      const { keyStart, keyEnd } = block;
      const allKeys = keyStart === 0 && keyEnd === p.keyLen;
      const kb = allKeys ? kg : narrow(kg, 2, keyStart, keyEnd - keyStart);
      const vb = allKeys ? vg : narrow(vg, 2, keyStart, keyEnd - keyStart);
      let queries: Tensor, blockKeys: Tensor;
      if (p.rotaryDim > 0) {
        const rotation = { rotaryDim: p.rotaryDim, invFreq: p.invFreq! };
        queries = rotary(qb, {
          ...rotation,
          positions: rowsOf(index.queryPositions, p.queryLen, group.batchStart, block.start),
          positionOffset: p.queryOffset + block.start,
          multiplier: p.scale,
          xpos: xpos ? { scaleBase: p.xposScaleBase, anchor: block.anchor, sign: 1, minDistance: -Infinity } : null,
        });
        blockKeys = rotary(kb, {
          ...rotation,
          positions: rowsOf(index.keyPositions, p.keyLen, group.batchStart, keyStart),
          positionOffset: keyStart,
          multiplier: 1,
          xpos: xpos
            ? { scaleBase: p.xposScaleBase, anchor: block.anchor, sign: -1, minDistance: block.minKeyDistance }
            : null,
        });
      } else {
        queries = mul(qb, p.scale);
        blockKeys = kb;
      }
      const kt = transpose(blockKeys, -2, -1);
      let scores = groupedMatmul(queries, kt);
      drop(queries, kt);
      // Capped before any −∞ mask is added: tanh would bring a masked score back to −cap.
      if (p.softCap !== null) {
        const capped = softCapped(scores, p.softCap, drop);
        drop(scores);
        scores = capped;
      }
      if (p.window !== null) {
        const mask = windowMask(p.window, p.queryOffset + block.start, length, keyStart, keyEnd, scores);
        const masked = add(scores, mask);
        drop(scores, mask);
        scores = masked;
      }
      if (blockKeys !== kb) drop(blockKeys);
      if (qb !== qg) drop(qb);
      if (kb !== kg) drop(kb);
      const probs = maskedSoftmax(
        scores,
        {
          causal: p.causal,
          // Indices relative to the block's first key (ALiBi distances and the causal mask are differences).
          queryOffset: p.queryOffset + block.start - keyStart,
          alibiSlopes: p.slopes,
          queryPositions: rowsOf(index.queryPositions, p.queryLen, group.batchStart, block.start),
          keyPositions: rowsOf(index.keyPositions, p.keyLen, group.batchStart, keyStart),
          querySegments: rowsOf(index.querySegments, p.queryLen, group.batchStart, block.start),
          keySegments: rowsOf(index.keySegments, p.keyLen, group.batchStart, keyStart),
        },
        { inPlace: true },
      );
      drop(scores);
      outputs.push(groupedMatmul(probs, vb));
      drop(probs);
      if (vb !== vg) drop(vb);
    }
    groupOutputs.push(outputs.length === 1 ? outputs[0]! : concat(outputs, 2));
    if (outputs.length > 1) drop(...outputs);
    for (const [t, full] of [
      [qg, q],
      [kg, keys],
      [vg, v],
    ] as const)
      if (t !== full) drop(t);
  }
  if (keys !== k) drop(keys);
  const out = groupOutputs.length === 1 ? groupOutputs[0]! : concat(groupOutputs, 0);
  if (groupOutputs.length > 1) drop(...groupOutputs);
  if (!grad) for (const t of uploads) t.dispose();
  return out;
}

/** cap · tanh(x / cap), freeing its intermediates through `drop`. */
function softCapped(x: Tensor, cap: number, drop: (...ts: Tensor[]) => void): Tensor {
  const divided = mul(x, 1 / cap);
  const squashed = tanh(divided);
  drop(divided);
  const capped = mul(squashed, cap);
  drop(squashed);
  return capped;
}

/**
 * [queries, keyEnd − keyStart] additive mask of the sliding window over keys keyStart… : 0 where
 * firstQuery + i − j < window, −∞ elsewhere (keys after the query are left to the causal mask), in the
 * scores' dtype and device.
 */
function windowMask(
  window: number,
  firstQuery: number,
  queries: number,
  keyStart: number,
  keyEnd: number,
  like: Tensor,
): Tensor {
  const keys = keyEnd - keyStart;
  const values = new Float32Array(queries * keys);
  for (let i = 0; i < queries; i++) {
    const lastHidden = firstQuery + i - window; // keys up to lastHidden fall outside the window
    for (let j = keyStart; j <= Math.min(lastHidden, keyEnd - 1); j++) values[i * keys + j - keyStart] = -Infinity;
  }
  return Tensor.fromArray(values, [queries, keys], like.dtype, like.device);
}

/** a [b, H, T, x] times m [b, G, x, y] with head h using group h mod G; K/V are never copied per head. */
function groupedMatmul(a: Tensor, m: Tensor): Tensor {
  const [b, H, T, x] = a.shape as [number, number, number, number];
  const G = m.shape[1]!,
    y = m.shape[3]!;
  if (G === H) return matmul(a, m);
  if (G === 1) {
    const flat = reshape(a, [b, 1, H * T, x]);
    const r = matmul(flat, m);
    const out = reshape(r, [b, H, T, y]);
    if (!flat.gradFn) flat.dispose();
    if (!r.gradFn) r.dispose();
    return out;
  }
  const R = H / G;
  const grouped = reshape(permute(reshape(a, [b, R, G, T, x]), [0, 2, 1, 3, 4]), [b, G, R * T, x]);
  const r = matmul(grouped, m);
  return reshape(permute(reshape(r, [b, G, R, T, y]), [0, 2, 1, 3, 4]), [b, H, T, y]);
}

/**
 * The masked softmax gives a query that sees no key all-zero probabilities; the spec has no meaning
 * for it, so name the first such query (from the host's segment ids: O(batch · (queries + keys))).
 */
function checkEveryQuerySeesAKey(p: Problem): void {
  if (p.queryLen === 0 || p.keyLen === 0) return;
  const lastVisible = (i: number): number => (p.causal ? Math.min(p.keyLen - 1, i + p.queryOffset) : p.keyLen - 1);
  const fail = (i: number, b: number): never => {
    throw new RangeError(
      `attention: query ${i} of batch row ${b} can attend to no key (check causal offset and segment ids)`,
    );
  };
  if (!p.querySegments || !p.keySegments) {
    if (lastVisible(0) < 0) fail(0, 0);
    return;
  }
  const qs = hostIndices(p.querySegments),
    ks = hostIndices(p.keySegments);
  for (let b = 0; b < p.batch; b++) {
    const firstKey = new Map<number, number>();
    for (let j = p.keyLen - 1; j >= 0; j--) firstKey.set(ks[b * p.keyLen + j]!, j);
    for (let i = 0; i < p.queryLen; i++) {
      const first = firstKey.get(qs[b * p.queryLen + i]!);
      if (first === undefined || first > lastVisible(i)) fail(i, b);
    }
  }
}

interface QueryBlock {
  start: number;
  end: number;
  /** Keys [keyStart, keyEnd) can be attended by some query of the block (keyStart > 0 only with a window). */
  keyStart: number;
  keyEnd: number;
  /** xPos anchor position, and the lower clamp of the keys' (anchor − p) (−∞: none). */
  anchor: number;
  minKeyDistance: number;
}

interface RowGroup {
  batchStart: number;
  batchEnd: number;
  blocks: QueryBlock[];
}

/** Batch rows and query blocks computed together: everything at once unless xPos needs more anchors. */
function planBlocks(p: Problem): RowGroup[] {
  const keyEndFor = (end: number): number =>
    p.causal ? Math.max(0, Math.min(p.keyLen, end + p.queryOffset)) : p.keyLen;
  const whole = (batchStart: number, batchEnd: number, anchor: number): RowGroup => ({
    batchStart,
    batchEnd,
    blocks: [
      { start: 0, end: p.queryLen, keyStart: 0, keyEnd: keyEndFor(p.queryLen), anchor, minKeyDistance: -Infinity },
    ],
  });
  if (p.window !== null && p.xposScaleBase === 0 && p.queryLen > 0) return [windowed(p, keyEndFor)];
  if (p.xposScaleBase === 0 || p.queryLen === 0) return [whole(0, p.batch, 0)];
  const maxSpan = (2 * p.xposScaleBase * XPOS_MAX_LOG_FACTOR) / XPOS_LOG_ZETA_MIN;
  const queries = hostPositions(p.queryPositions, p.queryLen, p.queryOffset);
  const keys = hostPositions(p.keyPositions, p.keyLen, 0);
  const keyEnd = keyEndFor(p.queryLen);
  const span = (b0: number, b1: number): { low: number; high: number } => {
    const [ql, qh] = queries.range(b0, b1, 0, p.queryLen),
      [kl, kh] = keys.range(b0, b1, 0, keyEnd);
    return { low: Math.min(ql, kl), high: Math.max(qh, kh) };
  };
  const all = span(0, p.batch);
  if (all.high - all.low <= maxSpan) return [whole(0, p.batch, (all.low + all.high) / 2)];
  const perRow = queries.perBatch || keys.perBatch;
  const groups: RowGroup[] = [];
  for (let b0 = 0; b0 < p.batch; b0 = perRow ? b0 + 1 : p.batch) {
    const b1 = perRow ? b0 + 1 : p.batch;
    const s = span(b0, b1);
    if (s.high - s.low <= maxSpan) {
      groups.push(whole(b0, b1, (s.low + s.high) / 2));
      continue;
    }
    const blocks: QueryBlock[] = [];
    for (let start = 0; start < p.queryLen;) {
      let end = start + 1;
      while (end < p.queryLen && end - start < XPOS_QUERY_BLOCK) {
        const [lo, hi] = queries.range(b0, b1, start, end + 1);
        if (hi - lo > XPOS_MAX_SPREAD) break;
        end++;
      }
      blocks.push({
        start,
        end,
        keyStart: 0,
        keyEnd: keyEndFor(end),
        anchor: queries.range(b0, b1, start, end)[0],
        minKeyDistance: -XPOS_MAX_SPREAD,
      });
      start = end;
    }
    groups.push({ batchStart: b0, batchEnd: b1, blocks });
  }
  return groups;
}

/** Queries per block of windowed attention: each block's scores span at most 256 + window − 1 keys. */
const WINDOW_QUERY_BLOCK = 256;

/**
 * A sliding window in blocks of 256 queries, each reading only keys [first query − window + 1, last
 * query]: the scores take O(queries · (window + 256)) memory, not O(n²).
 */
function windowed(p: Problem, keyEndFor: (end: number) => number): RowGroup {
  const window = p.window!;
  const size = WINDOW_QUERY_BLOCK;
  const blocks: QueryBlock[] = [];
  for (let start = 0; start < p.queryLen; start += size) {
    const end = Math.min(p.queryLen, start + size);
    const keyEnd = keyEndFor(end);
    const keyStart = Math.min(Math.max(0, p.queryOffset + start - window + 1), keyEnd);
    blocks.push({ start, end, keyStart, keyEnd, anchor: 0, minKeyDistance: -Infinity });
  }
  return { batchStart: 0, batchEnd: p.batch, blocks };
}

/** Host view of positions for planning: explicit per-row values, or the default first + i. */
function hostPositions(
  input: TokenIndexInput | null,
  length: number,
  first: number,
): {
  perBatch: boolean;
  /** [min, max] over rows [b0, b1) and indices [start, end) (end > start). */
  range(b0: number, b1: number, start: number, end: number): [number, number];
} {
  if (!input) return { perBatch: false, range: (_b0, _b1, start, end) => [first + start, first + end - 1] };
  const values = hostIndices(input);
  return {
    perBatch: true,
    range: (b0, b1, start, end) => {
      let low = Infinity,
        high = -Infinity;
      for (let b = b0; b < b1; b++) {
        for (let i = start; i < end; i++) {
          const v = values[b * length + i]!;
          if (v < low) low = v;
          if (v > high) high = v;
        }
      }
      return [low, high];
    },
  };
}
