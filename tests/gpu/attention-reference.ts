// Float64 reference of Andromeda attention (AttentionArgs semantics, src/engine/engine.ts) for the GPU
// kernel tests: O(n²) loops over plain arrays, forward output, lse and every gradient. xPos enters in
// its exact relative form ζ^((p_q − p_k)/B) per (query, key) pair, which float64 holds at any length.
import type { AttentionArgs, Dense } from '../../src/engine/engine.js';
import type { DType } from '../../src/tensor/dtype.js';

export interface AttentionCase {
  name: string;
  B: number; H: number; KVH: number; NQ: number; NK: number; D: number;
  causal?: boolean;
  offset?: number;             // queryOffset (defaults to NK − NQ when causal, else 0)
  alibi?: boolean;
  alibiHeads?: number;         // heads with a slope (default ⌈3H/4⌉), the others get 0
  rotary?: number;             // rotaryDim
  xpos?: number;               // scale base B
  keyScale?: boolean;
  positions?: 'custom' | 'reset' | 'far';
  segments?: boolean;
  allMaskedRows?: boolean;     // some query rows get an id that no key has
  seed?: number;
}

export interface AttentionInputs {
  q: Float64Array; k: Float64Array; v: Float64Array; gout: Float64Array;
  ks: Float64Array | null;
  slopes: Float32Array | null;
  invFreq: Float32Array | null;
  qpos: Int32Array | null; kpos: Int32Array | null;
  qseg: Int32Array | null; kseg: Int32Array | null;
  offset: number;
  scale: number;
}

export interface AttentionResult {
  out: Float64Array; lse: Float64Array; dq: Float64Array; dk: Float64Array; dv: Float64Array; dks: Float64Array | null;
}

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Rounds to bfloat16 (round to nearest even), as the device stores the values. */
export function toBf16(a: Float64Array): Float64Array {
  const f = Float32Array.from(a);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < f.length; i++) u[i] = (((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return Float64Array.from(f);
}

/** ALiBi slopes of the spec for the first m heads (power-of-two or not), zero for the rest. */
export function alibiSlopes(heads: number, m: number): Float32Array {
  const pow2 = (n: number): number[] => {
    const start = 2 ** (-(2 ** -(Math.log2(n) - 3)));
    return Array.from({ length: n }, (_, i) => start ** (i + 1));
  };
  let s: number[];
  if (Number.isInteger(Math.log2(m))) s = pow2(m);
  else {
    const p = 2 ** Math.floor(Math.log2(m));
    s = [...pow2(p), ...pow2(2 * p).filter((_, i) => i % 2 === 0).slice(0, m - p)];
  }
  return Float32Array.from({ length: heads }, (_, h) => (h < m ? s[h]! : 0));
}

export function makeInputs(c: AttentionCase): AttentionInputs {
  const rand = rng(c.seed ?? 99 + c.NQ * 7 + c.NK * 13 + c.D * 3 + c.H);
  const normal = (): number => {
    const u = Math.max(rand(), 1e-12), v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const arr = (n: number, scale = 1): Float64Array => Float64Array.from({ length: n }, () => scale * normal());
  const { B, H, KVH, NQ, NK, D } = c;
  const offset = c.offset ?? (c.causal ? NK - NQ : 0);
  const q = toBf16(arr(B * H * NQ * D)), k = toBf16(arr(B * KVH * NK * D)), v = toBf16(arr(B * KVH * NK * D));
  const gout = toBf16(arr(B * H * NQ * D));
  const ks = c.keyScale ? Float64Array.from(Float32Array.from({ length: H * D }, () => 0.6 + 0.8 * rand())) : null;
  const slopes = c.alibi ? alibiSlopes(H, c.alibiHeads ?? Math.max(1, Math.ceil((H * 3) / 4))) : null;
  const r = c.rotary ?? 0;
  const invFreq = r > 0 ? Float32Array.from({ length: r / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / r)) : null;
  let kpos: Int32Array | null = null, qpos: Int32Array | null = null, kseg: Int32Array | null = null, qseg: Int32Array | null = null;
  if (c.positions || c.segments) {
    kpos = new Int32Array(B * NK);
    kseg = new Int32Array(B * NK);
    for (let b = 0; b < B; b++) {
      let doc = 0, p = c.positions === 'far' ? 150000 : 0;
      for (let j = 0; j < NK; j++) {
        if (c.segments && j > 0 && rand() < 0.05) { doc++; if (c.positions === 'reset') p = 0; }
        kseg[b * NK + j] = doc * 3 + 1;
        kpos[b * NK + j] = c.positions === 'custom' ? p + Math.floor(rand() * 3) : p;
        p = kpos[b * NK + j]! + 1;
      }
    }
    qpos = new Int32Array(B * NQ);
    qseg = new Int32Array(B * NQ);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < NQ; i++) {
        const j = Math.min(NK - 1, Math.max(0, offset + i));
        qpos[b * NQ + i] = kpos[b * NK + j]!;
        qseg[b * NQ + i] = kseg[b * NK + j]!;
        if (c.allMaskedRows && i % 5 === 2) qseg[b * NQ + i] = -7;
      }
    }
    if (!c.positions) { qpos = null; kpos = null; }
    if (!c.segments) { qseg = null; kseg = null; }
  }
  return { q, k, v, gout, ks, slopes, invFreq, qpos, kpos, qseg, kseg, offset, scale: 1 / Math.sqrt(D) };
}

/** The engine arguments of case c; `put` uploads the key scale, positions and segments the inputs have. */
export function attentionArgsOf(c: AttentionCase, inp: AttentionInputs, put: (values: ArrayLike<number>, dtype: DType) => Dense): AttentionArgs {
  return {
    batch: c.B, heads: c.H, kvHeads: c.KVH, queryLen: c.NQ, keyLen: c.NK, headDim: c.D, scale: inp.scale,
    causal: !!c.causal, queryOffset: inp.offset, alibiSlopes: inp.slopes,
    rotaryDim: c.rotary ?? 0, rotaryInvFreq: inp.invFreq, xposScaleBase: c.xpos ?? 0,
    keyScale: inp.ks ? put(inp.ks, 'float32') : null,
    queryPositions: inp.qpos ? put(inp.qpos, 'int32') : null, keyPositions: inp.kpos ? put(inp.kpos, 'int32') : null,
    querySegments: inp.qseg ? put(inp.qseg, 'int32') : null, keySegments: inp.kseg ? put(inp.kseg, 'int32') : null,
  };
}

export function reference(c: AttentionCase, inp: AttentionInputs): AttentionResult {
  const { B, H, KVH, NQ, NK, D } = c;
  const r = c.rotary ?? 0, h2 = r / 2, XB = c.xpos ?? 0, scale = inp.scale;
  const qp = (b: number, i: number): number => (inp.qpos ? inp.qpos[b * NQ + i]! : inp.offset + i);
  const kp = (b: number, j: number): number => (inp.kpos ? inp.kpos[b * NK + j]! : j);
  const rot = (x: Float64Array, p: number, inverse: boolean): Float64Array => {
    const y = Float64Array.from(x);
    for (let i = 0; i < h2; i++) {
      const a = p * inp.invFreq![i]!, co = Math.cos(a), si = Math.sin(a), x1 = x[i]!, x2 = x[i + h2]!;
      if (!inverse) { y[i] = x1 * co - x2 * si; y[i + h2] = x2 * co + x1 * si; } else { y[i] = x1 * co + x2 * si; y[i + h2] = x2 * co - x1 * si; }
    }
    return y;
  };
  const logZeta = Array.from({ length: r }, (_, d) => Math.log((2 * (d % h2) + 0.4 * r) / (1.4 * r)));
  const out = new Float64Array(B * H * NQ * D), lse = new Float64Array(B * H * NQ);
  const dq = new Float64Array(B * H * NQ * D), dk = new Float64Array(B * KVH * NK * D), dv = new Float64Array(B * KVH * NK * D);
  const dks = inp.ks ? new Float64Array(H * D) : null;
  const fac = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = h % KVH;
      const slope = inp.slopes ? inp.slopes[h]! : 0;
      const kraw: Float64Array[] = [], krot: Float64Array[] = [];
      for (let j = 0; j < NK; j++) {
        const x = inp.k.subarray(((b * KVH + g) * NK + j) * D, ((b * KVH + g) * NK + j + 1) * D);
        kraw.push(x);
        krot.push(rot(Float64Array.from(x, (val, d) => (inp.ks ? val * inp.ks[h * D + d]! : val)), kp(b, j), false));
      }
      const dkrot = Array.from({ length: NK }, () => new Float64Array(D));
      for (let i = 0; i < NQ; i++) {
        const row = (b * H + h) * NQ + i;
        const pq = qp(b, i);
        const qrot = rot(inp.q.slice(row * D, (row + 1) * D), pq, false);
        const visible = (j: number): boolean =>
          !(c.causal && j > i + inp.offset) && !(inp.qseg && inp.qseg[b * NQ + i] !== inp.kseg![b * NK + j]);
        const factor = (j: number): Float64Array => {
          fac.fill(1);
          if (XB) for (let d = 0; d < r; d++) fac[d] = Math.exp(logZeta[d]! * (pq - kp(b, j)) / XB);
          return fac;
        };
        const s = new Float64Array(NK).fill(-Infinity);
        for (let j = 0; j < NK; j++) {
          if (!visible(j)) continue;
          const f = factor(j);
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qrot[d]! * krot[j]![d]! * f[d]!;
          s[j] = scale * dot - slope * Math.abs(pq - kp(b, j));
        }
        let m = -Infinity;
        for (let j = 0; j < NK; j++) m = Math.max(m, s[j]!);
        if (m === -Infinity) { lse[row] = -Infinity; continue; }  // out and dq stay 0
        let l = 0;
        for (let j = 0; j < NK; j++) l += Math.exp(s[j]! - m);
        lse[row] = m + Math.log(l);
        const P = Float64Array.from(s, (x) => Math.exp(x - lse[row]!));
        const o = new Float64Array(D);
        for (let j = 0; j < NK; j++) {
          if (P[j] === 0) continue;
          for (let d = 0; d < D; d++) o[d] += P[j]! * inp.v[((b * KVH + g) * NK + j) * D + d]!;
        }
        out.set(o, row * D);
        const go = inp.gout.subarray(row * D, (row + 1) * D);
        let Di = 0;
        for (let d = 0; d < D; d++) Di += go[d]! * o[d]!;
        const dqrot = new Float64Array(D);
        for (let j = 0; j < NK; j++) {
          if (!visible(j)) continue;
          const f = factor(j);
          const vj = (b * KVH + g) * NK + j;
          let dP = 0;
          for (let d = 0; d < D; d++) { dP += go[d]! * inp.v[vj * D + d]!; dv[vj * D + d] += P[j]! * go[d]!; }
          const dS = P[j]! * (dP - Di);
          for (let d = 0; d < D; d++) {
            dqrot[d] += dS * scale * krot[j]![d]! * f[d]!;
            dkrot[j]![d] += dS * scale * qrot[d]! * f[d]!;
          }
        }
        dq.set(rot(dqrot, pq, true), row * D);
      }
      for (let j = 0; j < NK; j++) {
        const dkt = rot(dkrot[j]!, kp(b, j), true);
        const base = ((b * KVH + g) * NK + j) * D;
        for (let d = 0; d < D; d++) {
          dk[base + d] += inp.ks ? dkt[d]! * inp.ks[h * D + d]! : dkt[d]!;
          if (dks) dks[h * D + d] += dkt[d]! * kraw[j]![d]!;
        }
      }
    }
  }
  return { out, lse, dq, dk, dv, dks };
}

/** ‖got − ref‖ / ‖ref‖; −∞ must match exactly and anything else non-finite fails (returns ∞). */
export function relativeError(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = got[i]!, b = ref[i]!;
    if (b === -Infinity || a === -Infinity) {
      if (a !== b) return Infinity;
      continue;
    }
    if (!Number.isFinite(a)) return Infinity;
    num += (a - b) ** 2;
    den += b * b;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
