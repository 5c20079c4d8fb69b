// Float64 host versions of the reference attention kernels (maskedSoftmax, rotary; semantics of
// MaskedSoftmaxArgs and RotaryArgs in src/engine/engine.ts), written out element by element for
// the CPU and GPU kernel tests.

/** Per-token int32 values of [batch] rows: row b's value i at offset + b·stride + i. */
export interface HostRows {
  values: Int32Array;
  offset: number;
  stride: number;
}

export interface HostMask {
  batch: number;
  heads: number;
  queryLen: number;
  keyLen: number;
  causal: boolean;
  queryOffset: number;
  slopes: Float64Array | null;
  queryPositions: HostRows | null;
  keyPositions: HostRows | null;
  querySegments: HostRows | null;
  keySegments: HostRows | null;
}

const at = (rows: HostRows, b: number, i: number): number => rows.values[rows.offset + b * rows.stride + i]!;

/** softmax over keys of scores + ALiBi, masked keys exactly 0, rows with no visible key all 0. */
export function maskedSoftmaxReference(scores: ArrayLike<number>, m: HostMask): Float64Array {
  const { batch, heads, queryLen: T, keyLen: K } = m;
  const out = new Float64Array(batch * heads * T * K);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < T; i++) {
        const row = ((b * heads + h) * T + i) * K;
        const pq = m.queryPositions ? at(m.queryPositions, b, i) : i + m.queryOffset;
        const biased: number[] = [];
        for (let j = 0; j < K; j++) {
          const masked =
            (m.causal && j > i + m.queryOffset) ||
            (m.querySegments !== null && at(m.querySegments, b, i) !== at(m.keySegments!, b, j));
          const pk = m.keyPositions ? at(m.keyPositions, b, j) : j;
          biased.push(masked ? -Infinity : scores[row + j]! - (m.slopes ? m.slopes[h]! : 0) * Math.abs(pq - pk));
        }
        const mx = Math.max(...biased);
        if (mx === -Infinity) continue;
        const e = biased.map((s) => Math.exp(s - mx));
        const z = e.reduce((a, x) => a + x, 0);
        for (let j = 0; j < K; j++) out[row + j] = e[j]! / z;
      }
  return out;
}

export interface HostRotary {
  batch: number;
  heads: number;
  length: number;
  headDim: number;
  rotaryDim: number;
  invFreq: Float64Array;
  positions: HostRows | null;
  positionOffset: number;
  xpos: { scaleBase: number; anchor: number; sign: 1 | -1; minDistance: number } | null;
  multiplier: number;
  transpose: boolean;
}

/** multiplier · ζ^e · R(p) x (Rᵀ when transpose) on the rotated features, multiplier · x on the rest. */
export function rotaryReference(x: ArrayLike<number>, s: HostRotary): Float64Array {
  const { batch, heads, length: n, headDim: d, rotaryDim: r } = s;
  const half = r / 2;
  const out = new Float64Array(batch * heads * n * d);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < n; j++) {
        const base = ((b * heads + h) * n + j) * d;
        const p = s.positions ? at(s.positions, b, j) : j + s.positionOffset;
        for (let f = 0; f < half; f++) {
          const theta = p * s.invFreq[f]!;
          const sin = (s.transpose ? -1 : 1) * Math.sin(theta),
            cos = Math.cos(theta);
          let factor = s.multiplier;
          if (s.xpos) {
            const zeta = (2 * f + 0.4 * r) / (1.4 * r);
            factor *= zeta ** (Math.max(s.xpos.sign * (p - s.xpos.anchor), s.xpos.minDistance) / s.xpos.scaleBase);
          }
          const x0 = x[base + f]!,
            x1 = x[base + f + half]!;
          out[base + f] = factor * (x0 * cos - x1 * sin);
          out[base + f + half] = factor * (x1 * cos + x0 * sin);
        }
        for (let f = r; f < d; f++) out[base + f] = s.multiplier * x[base + f]!;
      }
  return out;
}
