// The float64 reference of Andromeda's fused attention (AttentionArgs semantics, src/engine/engine.ts) that the CPU
// and GPU engine tests both check against: O(n²) loops over plain arrays giving the forward output, lse and every
// gradient (q, k, v, key scale). xPos enters in its exact relative form ζ^((p_q − p_k)/B) per (query, key) pair,
// which float64 holds at any length.

/** The shape and the features of one attention problem (what the reference needs besides the inputs). */
export interface AttentionShape {
  B: number;
  H: number;
  KVH: number;
  NQ: number;
  NK: number;
  D: number;
  causal?: boolean;
  rotary?: number; // rotaryDim (0 or absent: none)
  xpos?: number; // xPos scale base (0 or absent: none)
}

/** Host values of one problem: q, k, v, the output gradient, and the optional features' arrays. */
export interface AttentionInputs {
  q: Float64Array;
  k: Float64Array;
  v: Float64Array;
  gout: Float64Array;
  ks: Float64Array | null; // key scale [H, D]
  slopes: Float32Array | null; // ALiBi [H]
  invFreq: Float32Array | null; // rotary [rotary / 2]
  qpos: Int32Array | null;
  kpos: Int32Array | null;
  qseg: Int32Array | null;
  kseg: Int32Array | null;
  offset: number; // queryOffset
  scale: number;
}

export interface AttentionResult {
  out: Float64Array;
  lse: Float64Array;
  dq: Float64Array;
  dk: Float64Array;
  dv: Float64Array;
  dks: Float64Array | null;
}

export interface ReferenceOptions {
  /** Rotary angles rounded to float32 as p · invFreq (what a kernel computing them in float32 sees). */
  float32Angles?: boolean;
}

/** A seeded uniform generator on [0, 1) (mulberry32): the same inputs on every run and machine. */
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

/** Forward output, lse (natural log; −∞ for rows that see no key, whose output and dq are 0) and every gradient. */
export function referenceAttention(
  c: AttentionShape,
  inp: AttentionInputs,
  options: ReferenceOptions = {},
): AttentionResult {
  const { B, H, KVH, NQ, NK, D } = c;
  const r = c.rotary ?? 0,
    h2 = r / 2,
    XB = c.xpos ?? 0,
    scale = inp.scale;
  const qp = (b: number, i: number): number => (inp.qpos ? inp.qpos[b * NQ + i]! : inp.offset + i);
  const kp = (b: number, j: number): number => (inp.kpos ? inp.kpos[b * NK + j]! : j);
  const angle = (p: number, i: number): number =>
    options.float32Angles ? Math.fround(p * inp.invFreq![i]!) : p * inp.invFreq![i]!;
  const rot = (x: Float64Array, p: number, inverse: boolean): Float64Array => {
    const y = Float64Array.from(x);
    for (let i = 0; i < h2; i++) {
      const a = angle(p, i),
        co = Math.cos(a),
        si = Math.sin(a),
        x1 = x[i]!,
        x2 = x[i + h2]!;
      if (!inverse) {
        y[i] = x1 * co - x2 * si;
        y[i + h2] = x2 * co + x1 * si;
      } else {
        y[i] = x1 * co + x2 * si;
        y[i + h2] = x2 * co - x1 * si;
      }
    }
    return y;
  };
  const logZeta = Array.from({ length: r }, (_, d) => Math.log((2 * (d % h2) + 0.4 * r) / (1.4 * r)));
  const out = new Float64Array(B * H * NQ * D),
    lse = new Float64Array(B * H * NQ);
  const dq = new Float64Array(B * H * NQ * D),
    dk = new Float64Array(B * KVH * NK * D),
    dv = new Float64Array(B * KVH * NK * D);
  const dks = inp.ks ? new Float64Array(H * D) : null;
  const fac = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = h % KVH; // x-transformers grouping
      const slope = inp.slopes ? inp.slopes[h]! : 0;
      const kraw: Float64Array[] = [],
        krot: Float64Array[] = [];
      for (let j = 0; j < NK; j++) {
        const x = inp.k.subarray(((b * KVH + g) * NK + j) * D, ((b * KVH + g) * NK + j + 1) * D);
        kraw.push(x);
        krot.push(
          rot(
            Float64Array.from(x, (val, d) => (inp.ks ? val * inp.ks[h * D + d]! : val)),
            kp(b, j),
            false,
          ),
        );
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
          if (XB) for (let d = 0; d < r; d++) fac[d] = Math.exp((logZeta[d]! * (pq - kp(b, j))) / XB);
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
        if (m === -Infinity) {
          lse[row] = -Infinity;
          continue;
        } // out and dq stay 0
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
          for (let d = 0; d < D; d++) {
            dP += go[d]! * inp.v[vj * D + d]!;
            dv[vj * D + d] += P[j]! * go[d]!;
          }
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
  let num = 0,
    den = 0;
  for (let i = 0; i < ref.length; i++) {
    const a = got[i]!,
      b = ref[i]!;
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
