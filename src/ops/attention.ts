// Attention as Andromeda defines it (docs: shared/spec/andromeda-model.md, "Attention"), as one op:
// per-head key scale, rotary with relative xPos, scale, ALiBi, causal and per-document masks,
// softmax, and the weighted sum of values. Engines with a fused kernel (Backend.attentionForward)
// run it in O(n) memory; otherwise a reference composition of matmul/softmax computes it exactly,
// in O(n²) memory, with gradients through the ordinary ops.
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { formatShape } from '../tensor/shape.js';
import type { AttentionArgs, Dense } from '../backend/backend.js';
import { record } from '../autograd/tape.js';
import { isGradEnabled } from '../autograd/grad-mode.js';
import { assertFloat, assertSameDType, assertSameDevice, emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';
import { concat, narrow, permute, reshape, transpose } from './layout.js';
import { add, mul } from './elementwise.js';
import { matmul } from './matmul.js';
import { softmax } from './nn.js';
import { zeros } from './creation.js';

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
  /** Document ids: a query attends only to keys of the same id. */
  readonly querySegments?: TokenIndexInput | null;
  readonly keySegments?: TokenIndexInput | null;
  /** 'auto' (default): the fused kernel when the engine has one and the dtype is not float64. */
  readonly implementation?: 'auto' | 'fused' | 'reference';
}

/** Query blocks of the reference path under xPos (keeps the relative factors bounded). */
const XPOS_QUERY_BLOCK = 256;
/** Largest position spread inside one query block, and the clamp on key exponents (in positions). */
const XPOS_MAX_SPREAD = 1024;

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
}

/**
 * q [batch, heads, queryLen, headDim], k and v [batch, kvHeads, keyLen, headDim] → [batch, heads,
 * queryLen, headDim]. Query head h reads KV head h mod kvHeads (the x-transformers grouping).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): Tensor {
  const p = validate(q, k, v, options);
  const implementation = options.implementation ?? 'auto';
  const fusedAvailable = typeof q.backend.attentionForward === 'function' && typeof q.backend.attentionBackward === 'function';
  if (implementation === 'fused' && !fusedAvailable) {
    throw new Error(`attention: implementation 'fused' was requested but the ${q.device} engine has no fused attention kernel`);
  }
  const useFused = implementation === 'fused' || (implementation === 'auto' && fusedAvailable && q.dtype !== 'float64');
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
    throw new RangeError(`attention: q, k and v must be [batch, heads, length, headDim], got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`);
  }
  const [batch, heads, queryLen, headDim] = q.shape as [number, number, number, number];
  const [kb, kvHeads, keyLen, kd] = k.shape as [number, number, number, number];
  if (kb !== batch || kd !== headDim || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new RangeError(`attention: k ${formatShape(k.shape)} and v ${formatShape(v.shape)} must both be [${batch}, kvHeads, keyLen, ${headDim}] for q ${formatShape(q.shape)}`);
  }
  if (kvHeads < 1 || heads % kvHeads !== 0) throw new RangeError(`attention: ${heads} query heads are not a multiple of ${kvHeads} key/value heads`);
  const causal = o.causal ?? true;
  const queryOffset = o.queryOffset ?? keyLen - queryLen;
  if (!Number.isInteger(queryOffset)) throw new RangeError(`attention: queryOffset ${queryOffset} must be an integer`);
  if (!(Number.isFinite(o.scale))) throw new RangeError(`attention: scale ${o.scale} must be a finite number`);
  const keyScale = o.keyScale ?? null;
  if (keyScale) {
    if (keyScale.rank !== 2 || keyScale.shape[0] !== heads || keyScale.shape[1] !== headDim) {
      throw new RangeError(`attention: keyScale must be [${heads}, ${headDim}], got ${formatShape(keyScale.shape)}`);
    }
    if (kvHeads !== 1 && kvHeads !== heads) {
      throw new RangeError(`attention: a per-head key scale needs one KV head or one per query head, got ${kvHeads} KV heads for ${heads} heads`);
    }
  }
  let rotaryDim = 0, invFreq: Float64Array | null = null, xposScaleBase = 0;
  if (o.rotary && o.rotary.dim > 0) {
    rotaryDim = o.rotary.dim;
    if (!Number.isInteger(rotaryDim) || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
      throw new RangeError(`attention: rotary dim ${rotaryDim} must be even and at most the head dim ${headDim}`);
    }
    if (o.rotary.invFreq.length !== rotaryDim / 2) throw new RangeError(`attention: rotary needs ${rotaryDim / 2} inverse frequencies, got ${o.rotary.invFreq.length}`);
    invFreq = Float64Array.from(o.rotary.invFreq);
    xposScaleBase = o.rotary.xposScaleBase ?? 0;
    if (xposScaleBase < 0 || !Number.isFinite(xposScaleBase)) throw new RangeError(`attention: xPos scale base ${xposScaleBase} must be positive (or 0 for none)`);
    if (xposScaleBase > 0 && !causal) throw new RangeError('attention: xPos needs causal attention (its relative factor grows without bound for keys after the query)');
  }
  let slopes: Float64Array | null = null;
  if (o.alibiSlopes) {
    if (o.alibiSlopes.length !== heads) throw new RangeError(`attention: ${o.alibiSlopes.length} ALiBi slopes for ${heads} heads (give 0 for heads without ALiBi)`);
    slopes = Float64Array.from(o.alibiSlopes);
    if (slopes.every((s) => s === 0)) slopes = null;
  }
  checkIndices('queryPositions', o.queryPositions, batch, queryLen);
  checkIndices('keyPositions', o.keyPositions, batch, keyLen);
  checkIndices('querySegments', o.querySegments, batch, queryLen);
  checkIndices('keySegments', o.keySegments, batch, keyLen);
  if (!o.querySegments !== !o.keySegments) throw new RangeError('attention: give both querySegments and keySegments, or neither');
  return {
    batch, heads, kvHeads, queryLen, keyLen, headDim, queryOffset, causal, scale: o.scale, rotaryDim, invFreq, xposScaleBase, slopes, keyScale,
    queryPositions: o.queryPositions ?? null, keyPositions: o.keyPositions ?? null,
    querySegments: o.querySegments ?? null, keySegments: o.keySegments ?? null,
  };
}

function checkIndices(name: string, input: TokenIndexInput | null | undefined, batch: number, length: number): void {
  if (!input) return;
  const size = input instanceof Int32Array ? input.length : input instanceof Tensor ? input.size : input.host.length;
  if (input instanceof Tensor && input.dtype !== 'int32') throw new TypeError(`attention: ${name} must be int32, got ${input.dtype}`);
  if (size !== batch * length) throw new RangeError(`attention: ${name} has ${size} values, expected [${batch}, ${length}]`);
}

function hostIndices(input: TokenIndexInput): Int32Array {
  if (input instanceof Int32Array) return input;
  if (input instanceof Tensor) return input.toArray() as Int32Array;
  return input.host;
}

/** Positions as float64 [batch or 1][length]; `perBatch` false when they are the default 0.. + offset. */
function positionsOf(input: TokenIndexInput | null, length: number, offset: number): { values: Float64Array; perBatch: boolean } {
  if (!input) return { values: Float64Array.from({ length }, (_, i) => i + offset), perBatch: false };
  return { values: Float64Array.from(hostIndices(input)), perBatch: true };
}

/** Range of the custom positions when all of them are known on the host (default positions count as q/k indices). */
function hostPositionRange(p: Problem): { min: number; max: number } | null {
  if (!p.queryPositions && !p.keyPositions) return null;
  const known = (input: TokenIndexInput | null, first: number, length: number): Int32Array | { min: number; max: number } | null => {
    if (!input) return { min: first, max: first + length - 1 };
    if (input instanceof Int32Array) return input;
    if (input instanceof Tensor) return null;  // on the device only: finding the range would mean a wait
    return input.host;
  };
  let min = Infinity, max = -Infinity;
  for (const part of [known(p.queryPositions, p.queryOffset, p.queryLen), known(p.keyPositions, 0, p.keyLen)]) {
    if (!part) return null;
    if (part instanceof Int32Array) {
      for (const v of part) { if (v < min) min = v; if (v > max) max = v; }
    } else {
      min = Math.min(min, part.min);
      max = Math.max(max, part.max);
    }
  }
  return Number.isFinite(min) ? { min, max } : null;
}

// ---------------------------------------------------------------------------------------------
// Fused path

function fusedAttention(q: Tensor, k: Tensor, v: Tensor, p: Problem): Tensor {
  const backend = q.backend;
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
  const qc = dense(q), kc = dense(k), vc = dense(v);
  // The contract's key scale is float32, float64 for float64 attention.
  const scaleDType: DType = q.dtype === 'float64' ? 'float64' : 'float32';
  let keyScale32: Tensor | null = null;
  if (p.keyScale) {
    keyScale32 = p.keyScale.dtype === scaleDType ? dense(p.keyScale) : contiguousRaw(p.keyScale, scaleDType);
    if (keyScale32 !== p.keyScale && !temps.includes(keyScale32)) temps.push(keyScale32);
  }
  const args: AttentionArgs = {
    batch: p.batch, heads: p.heads, kvHeads: p.kvHeads, queryLen: p.queryLen, keyLen: p.keyLen, headDim: p.headDim,
    scale: p.scale, causal: p.causal, queryOffset: p.queryOffset,
    alibiSlopes: p.slopes ? Float32Array.from(p.slopes) : null,
    rotaryDim: p.rotaryDim, rotaryInvFreq: p.invFreq ? Float32Array.from(p.invFreq) : null,
    xposScaleBase: p.xposScaleBase,
    keyScale: keyScale32 ? keyScale32.dense('attention') : null,
    queryPositions: deviceIndices(p.queryPositions), keyPositions: deviceIndices(p.keyPositions),
    querySegments: deviceIndices(p.querySegments), keySegments: deviceIndices(p.keySegments),
    positionRange: hostPositionRange(p),
  };
  const out = emptyLike(q);
  const lse = Tensor.empty([p.batch, p.heads, p.queryLen], 'float32', q.device);
  if (out.size > 0) backend.attentionForward!(qc.dense('attention'), kc.dense('attention'), vc.dense('attention'), out.dense(), lse.dense(), args);
  const inputs = p.keyScale ? [q, k, v, p.keyScale] : [q, k, v];
  if (!inputs.some((t) => t.requiresGrad) || !isGradEnabled()) {
    for (const t of temps) t.dispose();
    lse.dispose();
    return out;
  }
  // The saved copies and index tensors live until the scope ends, like every saved tensor.
  return record(out, 'attention', inputs, (g) => {
    const gc = g.isContiguous() ? g : contiguousRaw(g);
    const gq = emptyLike(q), gk = emptyLike(k), gv = emptyLike(v);
    const gks = p.keyScale ? zeros([p.heads, p.headDim], scaleDType, q.device) : null;
    if (out.size > 0) {
      backend.attentionBackward!(qc.dense(), kc.dense(), vc.dense(), out.dense(), lse.dense(), gc.dense(),
        gq.dense(), gk.dense(), gv.dense(), gks ? gks.dense() : null, args);
    } else {
      for (const t of [gk, gv]) if (t.size > 0) backend.fill(t.dense(), t.size, 0);
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
 * The spec's attention from differentiable ops. Rotary and xPos use host-computed tables; xPos is
 * applied relatively per query block (q by ζ^((i−a)/B), k by ζ^((a−j)/B) with a the block's anchor
 * position), which equals the reference ζ^((i−j)/B) exactly and never overflows.
 */
function referenceAttention(q: Tensor, k: Tensor, v: Tensor, p: Problem): Tensor {
  const grad = isGradEnabled();
  // Tensors made here that no recorded op saved are freed as soon as they are used (inference at
  // long lengths); with autograd on they stay until the enclosing scope ends.
  const scratch: Tensor[] = [];
  const drop = (...ts: Tensor[]): void => {
    for (const t of ts) if (!t.gradFn && !grad) t.dispose();
  };
  const constant = (values: Float64Array, shape: number[]): Tensor => {
    const t = Tensor.fromArray(values, shape, q.dtype, q.device);
    scratch.push(t);
    return t;
  };

  const queryPos = positionsOf(p.queryPositions, p.queryLen, p.queryOffset);
  const keyPos = positionsOf(p.keyPositions, p.keyLen, 0);
  const querySeg = p.querySegments ? hostIndices(p.querySegments) : null;
  const keySeg = p.keySegments ? hostIndices(p.keySegments) : null;

  let keys = k;
  if (p.keyScale) keys = mul(k, reshape(p.keyScale, [1, p.heads, 1, p.headDim]));
  let queries = q;
  if (p.rotaryDim > 0) {
    queries = applyRotary(q, rotaryTables(queryPos, p, constant));
    const rotatedKeys = applyRotary(keys, rotaryTables(keyPos, p, constant));
    if (keys !== k) drop(keys);
    keys = rotatedKeys;
  }
  const xpos = p.xposScaleBase > 0;
  if (!xpos) {
    const scaled = mul(queries, p.scale);
    if (queries !== q) drop(queries);
    queries = scaled;
  }

  const outputs: Tensor[] = [];
  for (const block of planBlocks(p, queryPos, xpos)) {
    const length = block.end - block.start;
    let qb = narrow(queries, 2, block.start, length);
    let kb = narrow(keys, 2, 0, block.keyEnd);
    const vb = narrow(v, 2, 0, block.keyEnd);
    if (xpos) {
      const [qFactor, kFactor] = xposFactors(p, queryPos, keyPos, block, constant);
      const qs = mul(qb, qFactor), ks = mul(kb, kFactor);
      drop(qb, kb);
      qb = qs;
      kb = ks;
    }
    const kt = transpose(kb, -2, -1);
    let scores = groupedMatmul(qb, kt);
    drop(qb, kt, kb);
    const bias = biasAndMask(p, queryPos, keyPos, querySeg, keySeg, block, constant);
    if (bias) {
      const biased = add(scores, bias);
      drop(scores);
      scores = biased;
    }
    const probs = softmax(scores, -1);
    drop(scores);
    outputs.push(groupedMatmul(probs, vb));
    drop(probs, vb);
    if (!grad) for (const t of scratch.splice(0)) t.dispose();
  }
  if (queries !== q) drop(queries);
  if (keys !== k) drop(keys);
  const out = outputs.length === 1 ? outputs[0]! : concat(outputs, 2);
  if (outputs.length > 1) drop(...outputs);
  if (!grad) for (const t of scratch) t.dispose();
  return out;
}

/** a [b, H, T, x] times m [b, G, x, y] with head h using group h mod G; K/V are never copied per head. */
function groupedMatmul(a: Tensor, m: Tensor): Tensor {
  const [b, H, T, x] = a.shape as [number, number, number, number];
  const G = m.shape[1]!, y = m.shape[3]!;
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

interface RotaryTables {
  /** [B', 1, n, r]: cos θ, and sin θ with the first half negated (so rot(x) = x·cos + swap(x)·sin). */
  cos: Tensor;
  sin: Tensor;
  rotaryDim: number;
}

function rotaryTables(pos: { values: Float64Array; perBatch: boolean }, p: Problem, constant: (v: Float64Array, s: number[]) => Tensor): RotaryTables {
  const r = p.rotaryDim, half = r / 2;
  const rows = pos.values.length;
  const cos = new Float64Array(rows * r), sin = new Float64Array(rows * r);
  for (let t = 0; t < rows; t++) {
    for (let i = 0; i < half; i++) {
      const angle = pos.values[t]! * p.invFreq![i]!;
      const c = Math.cos(angle), s = Math.sin(angle);
      cos[t * r + i] = c;
      cos[t * r + half + i] = c;
      sin[t * r + i] = -s;
      sin[t * r + half + i] = s;
    }
  }
  const batchDim = pos.perBatch ? p.batch : 1;
  const n = rows / batchDim;
  return { cos: constant(cos, [batchDim, 1, n, r]), sin: constant(sin, [batchDim, 1, n, r]), rotaryDim: r };
}

/** Rotates the first r features: x·cos θ + [x2, x1]·[−sin θ, sin θ]; the rest pass through. */
function applyRotary(x: Tensor, tables: RotaryTables): Tensor {
  const d = x.shape[3]!, r = tables.rotaryDim, half = r / 2;
  const rotated = r === d ? x : narrow(x, 3, 0, r);
  const x1 = narrow(rotated, 3, 0, half), x2 = narrow(rotated, 3, half, half);
  const swapped = concat([x2, x1], 3);
  const a = mul(rotated, tables.cos), b = mul(swapped, tables.sin);
  const turned = add(a, b);
  for (const t of [x1, x2, swapped, a, b]) if (!t.gradFn) t.dispose();
  if (r === d) return turned;
  const rest = narrow(x, 3, r, d - r);
  const out = concat([turned, rest], 3);
  for (const t of [rotated, rest, turned]) if (!t.gradFn) t.dispose();
  return out;
}

interface QueryBlock {
  start: number;
  end: number;
  /** Keys [0, keyEnd) can be attended by some query of the block. */
  keyEnd: number;
}

function planBlocks(p: Problem, queryPos: { values: Float64Array; perBatch: boolean }, xpos: boolean): QueryBlock[] {
  const keyEndFor = (end: number): number => (p.causal ? Math.max(0, Math.min(p.keyLen, end + p.queryOffset)) : p.keyLen);
  if (!xpos || p.queryLen <= XPOS_QUERY_BLOCK) {
    if (!xpos || spread(queryPos, p, 0, p.queryLen) <= XPOS_MAX_SPREAD) return [{ start: 0, end: p.queryLen, keyEnd: keyEndFor(p.queryLen) }];
  }
  const blocks: QueryBlock[] = [];
  let start = 0;
  while (start < p.queryLen) {
    let end = start + 1;
    while (end < p.queryLen && end - start < XPOS_QUERY_BLOCK && spread(queryPos, p, start, end + 1) <= XPOS_MAX_SPREAD) end++;
    blocks.push({ start, end, keyEnd: keyEndFor(end) });
    start = end;
  }
  return blocks;
}

/** Largest (max − min) of query positions over [start, end) within any batch row. */
function spread(pos: { values: Float64Array; perBatch: boolean }, p: Problem, start: number, end: number): number {
  const rows = pos.perBatch ? p.batch : 1;
  let worst = 0;
  for (let b = 0; b < rows; b++) {
    let lo = Infinity, hi = -Infinity;
    for (let i = start; i < end; i++) {
      const v = pos.values[b * p.queryLen + i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (end > start) worst = Math.max(worst, hi - lo);
  }
  return worst;
}

/** ζ per rotated feature: (2i + 0.4r) / (1.4r), duplicated over the two halves. */
function xposZeta(r: number): Float64Array {
  const zeta = new Float64Array(r);
  for (let i = 0; i < r / 2; i++) zeta[i] = zeta[i + r / 2] = (2 * i + 0.4 * r) / (1.4 * r);
  return zeta;
}

/**
 * q factor [B', 1, T, d] = scale · ζ^((p_i − a)/B) and k factor [B', 1, keyEnd, d] = ζ^((a − p_j)/B)
 * on the rotated features (1 elsewhere), a = the smallest query position of the block.
 */
function xposFactors(p: Problem, queryPos: { values: Float64Array; perBatch: boolean }, keyPos: { values: Float64Array; perBatch: boolean },
  block: QueryBlock, constant: (v: Float64Array, s: number[]) => Tensor): [Tensor, Tensor] {
  const r = p.rotaryDim, d = p.headDim, B = p.xposScaleBase;
  const logZeta = Array.from(xposZeta(r), Math.log);
  const rows = queryPos.perBatch || keyPos.perBatch ? p.batch : 1;
  const T = block.end - block.start, K = block.keyEnd;
  const qf = new Float64Array(rows * T * d), kf = new Float64Array(rows * K * d);
  for (let b = 0; b < rows; b++) {
    const qBase = queryPos.perBatch ? b * p.queryLen : 0;
    const kBase = keyPos.perBatch ? b * p.keyLen : 0;
    let anchor = Infinity;
    for (let i = block.start; i < block.end; i++) anchor = Math.min(anchor, queryPos.values[qBase + i]!);
    for (let i = 0; i < T; i++) {
      const e = (queryPos.values[qBase + block.start + i]! - anchor) / B;
      const row = (b * T + i) * d;
      for (let f = 0; f < d; f++) qf[row + f] = p.scale * (f < r ? Math.exp(logZeta[f]! * e) : 1);
    }
    for (let j = 0; j < K; j++) {
      // Keys far after the anchor can only be masked ones (xPos is causal); clamping keeps them finite.
      const e = Math.max(anchor - keyPos.values[kBase + j]!, -XPOS_MAX_SPREAD) / B;
      const row = (b * K + j) * d;
      for (let f = 0; f < d; f++) kf[row + f] = f < r ? Math.exp(logZeta[f]! * e) : 1;
    }
  }
  return [constant(qf, [rows, 1, T, d]), constant(kf, [rows, 1, K, d])];
}

/** ALiBi bias plus −∞ at masked (causal, other-document) entries, [B', H', T, keyEnd], or null. */
function biasAndMask(p: Problem, queryPos: { values: Float64Array; perBatch: boolean }, keyPos: { values: Float64Array; perBatch: boolean },
  querySeg: Int32Array | null, keySeg: Int32Array | null, block: QueryBlock, constant: (v: Float64Array, s: number[]) => Tensor): Tensor | null {
  const T = block.end - block.start, K = block.keyEnd;
  if (!p.slopes && !querySeg && !(p.causal && hasCausalMask(p, block))) return null;
  const rows = queryPos.perBatch || keyPos.perBatch || querySeg ? p.batch : 1;
  const H = p.slopes ? p.heads : 1;
  const values = new Float64Array(rows * H * T * K);
  for (let b = 0; b < rows; b++) {
    const qBase = queryPos.perBatch ? b * p.queryLen : 0, kBase = keyPos.perBatch ? b * p.keyLen : 0;
    for (let i = 0; i < T; i++) {
      const qi = block.start + i;
      let visible = 0;
      for (let j = 0; j < K; j++) {
        const masked = (p.causal && j > qi + p.queryOffset) || (querySeg !== null && querySeg[b * p.queryLen + qi] !== keySeg![b * p.keyLen + j]);
        if (!masked) visible++;
        const distance = Math.abs(queryPos.values[qBase + qi]! - keyPos.values[kBase + j]!);
        for (let h = 0; h < H; h++) {
          values[((b * H + h) * T + i) * K + j] = masked ? -Infinity : p.slopes ? -p.slopes[h]! * distance : 0;
        }
      }
      if (visible === 0) {
        throw new RangeError(`attention: query ${qi} of batch row ${b} can attend to no key (check causal offset and segment ids)`);
      }
    }
  }
  return constant(values, [rows, H, T, K]);
}

function hasCausalMask(p: Problem, block: QueryBlock): boolean {
  // Some key of the block's range lies after some query: the first query sees keys up to start + offset.
  return block.keyEnd - 1 > block.start + p.queryOffset;
}
