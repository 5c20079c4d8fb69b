/**
 * Rotary position settings derived from the config: inverse frequencies (with NTK base rescale,
 * linear interpolation or YaRN folded in), the xPos scale base, and YaRN's logit temperature.
 * The rotation itself is applied inside the attention op (src/ops/attention.ts).
 */
import type { AttentionRotary } from '../ops/attention.js';
import type { AndromedaConfig, RotaryConfig, YarnConfig } from './config.js';

export interface RotarySettings extends AttentionRotary {
  readonly invFreq: Float64Array;
  /** Multiplies the attention scale (YaRN's attention factor squared; 1 otherwise). */
  readonly scaleMultiplier: number;
}

/** 1 / base^(2i / dim) for i < dim/2, base already rescaled. */
export function plainInverseFrequencies(dim: number, base: number): Float64Array {
  return Float64Array.from({ length: dim / 2 }, (_, i) => 1 / base ** ((2 * i) / dim));
}

/** The NTK-aware base: base · factor^(dim / (dim − 2)) (x-transformers' rotary_base_rescale_factor). */
export function ntkBase(base: number, factor: number, dim: number): number {
  return factor === 1 ? base : base * factor ** (dim / (dim - 2));
}

/**
 * YaRN ("NTK-by-parts") frequencies: frequencies that turn fewer than betaSlow times over the original
 * context are interpolated by the factor, those turning more than betaFast times are kept, with a
 * linear ramp between (as in the YaRN paper and its reference code).
 */
export function yarnInverseFrequencies(dim: number, base: number, yarn: YarnConfig): Float64Array {
  const correctionDim = (rotations: number): number =>
    (dim * Math.log(yarn.originalMaxSeqLen / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  const low = Math.max(Math.floor(correctionDim(yarn.betaFast)), 0);
  let high = Math.min(Math.ceil(correctionDim(yarn.betaSlow)), dim - 1);
  if (high === low) high += 0.001;
  const plain = plainInverseFrequencies(dim, base);
  return plain.map((extrapolated, i) => {
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const keep = 1 - ramp;
    const interpolated = extrapolated / yarn.factor;
    return interpolated * (1 - keep) + extrapolated * keep;
  });
}

export function rotarySettings(config: AndromedaConfig): RotarySettings | null {
  const r: RotaryConfig | null = config.rotary;
  if (!r) return null;
  const base = ntkBase(r.base, r.ntkBaseRescale, r.dim);
  let invFreq = r.yarn ? yarnInverseFrequencies(r.dim, base, r.yarn) : plainInverseFrequencies(r.dim, base);
  if (r.interpolationFactor !== 1) invFreq = invFreq.map((f) => f / r.interpolationFactor);
  // x-transformers keeps inv_freq in a float32 buffer; rounding the same way keeps parity exact.
  invFreq = invFreq.map(Math.fround);
  const attentionFactor = r.yarn ? r.yarn.attentionFactor : 1;
  return {
    dim: r.dim,
    invFreq,
    xposScaleBase: r.xpos ? r.xposScaleBase : 0,
    scaleMultiplier: attentionFactor * attentionFactor,
  };
}

/** x-transformers' xPos `scale` buffer: (2i + 0.4·dim) / (1.4·dim), i < dim/2. */
export function xposZeta(dim: number): Float64Array {
  return Float64Array.from({ length: dim / 2 }, (_, i) => (2 * i + 0.4 * dim) / (1.4 * dim));
}
