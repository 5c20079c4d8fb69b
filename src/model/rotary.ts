/**
 * Rotary position settings derived from the config: inverse frequencies (with NTK base rescale,
 * linear interpolation, YaRN, Llama 3.1 or LongRoPE folded in), the xPos scale base, and YaRN's or
 * LongRoPE's logit temperature.
 * The rotation itself is applied inside the attention op (src/ops/attention.ts).
 */
import type { AttentionRotary } from '../ops/attention.js';
import type { AndromedaConfig, Llama3ScalingConfig, LongRopeConfig, RotaryConfig, YarnConfig } from './config.js';

export interface RotarySettings extends AttentionRotary {
  readonly invFreq: Float64Array;
  /** Multiplies the attention scale (YaRN's attention factor squared; 1 otherwise). */
  readonly scaleMultiplier: number;
  /** Dynamic NTK: the frequencies depend on the number of keys (see rotaryForKeys). */
  readonly dynamicNtk: { readonly factor: number; readonly originalMaxSeqLen: number; readonly base: number } | null;
  /** LongRoPE: the frequencies for calls over more than originalMaxSeqLen keys (see rotaryForKeys). */
  readonly longRope: { readonly originalMaxSeqLen: number; readonly invFreq: Float64Array } | null;
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

/**
 * Llama 3.1's scaling of plain frequencies: wavelength 2π/f below originalMaxSeqLen/highFreqFactor kept,
 * above originalMaxSeqLen/lowFreqFactor divided by factor, in between (1 − s)·f/factor + s·f with
 * s = (originalMaxSeqLen/wavelength − lowFreqFactor)/(highFreqFactor − lowFreqFactor).
 */
export function llama3InverseFrequencies(dim: number, base: number, l: Llama3ScalingConfig): Float64Array {
  const lowFreqWavelength = l.originalMaxSeqLen / l.lowFreqFactor;
  const highFreqWavelength = l.originalMaxSeqLen / l.highFreqFactor;
  return plainInverseFrequencies(dim, base).map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < highFreqWavelength) return f;
    if (wavelength > lowFreqWavelength) return f / l.factor;
    const smooth = (l.originalMaxSeqLen / wavelength - l.lowFreqFactor) / (l.highFreqFactor - l.lowFreqFactor);
    return ((1 - smooth) * f) / l.factor + smooth * f;
  });
}

/**
 * LongRoPE frequencies 1 / (factor_i · base^(2i/dim)), rounded at each step to float32 as transformers'
 * float32 computation of them is (the factors are tuned per frequency, so their product is where it matters).
 */
export function longRopeInverseFrequencies(dim: number, base: number, factors: readonly number[]): Float64Array {
  const f = Math.fround;
  return Float64Array.from({ length: dim / 2 }, (_, i) => {
    const power = f(f(base) ** f((2 * i) / dim));
    return f(1 / f(f(factors[i]!) * power));
  });
}

/** The dynamic NTK base for `keys` keys: rescaled only beyond the original length. */
export function dynamicNtkBase(base: number, dim: number, factor: number, originalMaxSeqLen: number, keys: number) {
  const length = Math.max(keys, originalMaxSeqLen);
  return base * ((factor * length) / originalMaxSeqLen - (factor - 1)) ** (dim / (dim - 2));
}

export function rotarySettings(config: AndromedaConfig): RotarySettings | null {
  const r: RotaryConfig | null = config.rotary;
  if (!r) return null;
  const base = ntkBase(r.base, r.ntkBaseRescale, r.dim);
  const longRope: LongRopeConfig | null = r.longRope;
  let invFreq = r.yarn
    ? yarnInverseFrequencies(r.dim, base, r.yarn)
    : r.llama3
      ? llama3InverseFrequencies(r.dim, base, r.llama3)
      : longRope
        ? longRopeInverseFrequencies(r.dim, base, longRope.shortFactors)
        : plainInverseFrequencies(r.dim, base);
  if (r.interpolationFactor !== 1) invFreq = invFreq.map((f) => f / r.interpolationFactor);
  // x-transformers and transformers keep inv_freq in a float32 buffer; rounding the same way keeps parity.
  invFreq = invFreq.map(Math.fround);
  const attentionFactor = r.yarn ? r.yarn.attentionFactor : longRope ? longRope.attentionFactor : 1;
  return {
    dim: r.dim,
    invFreq,
    xposScaleBase: r.xpos ? r.xposScaleBase : 0,
    scaleMultiplier: attentionFactor * attentionFactor,
    dynamicNtk: r.dynamicNtk ? { ...r.dynamicNtk, base } : null,
    longRope: longRope
      ? {
          originalMaxSeqLen: longRope.originalMaxSeqLen,
          invFreq: longRopeInverseFrequencies(r.dim, base, longRope.longFactors),
        }
      : null,
  };
}

/**
 * The rotary settings for an attention call over `keys` keys: the model's own, except with dynamic NTK or
 * LongRoPE, whose frequencies follow the number of keys. All keys are rotated with the current frequencies,
 * which is what a forward over the whole sequence computes (transformers' incremental decoding instead keeps
 * each cached key at the rotation of the step that cached it; for LongRoPE it recomputes the cache once the
 * sequence outgrows the original length, which gives the same as here).
 */
export function rotaryForKeys(settings: RotarySettings, keys: number): RotarySettings {
  const long = settings.longRope;
  if (long) return keys > long.originalMaxSeqLen ? { ...settings, invFreq: long.invFreq } : settings;
  const d = settings.dynamicNtk;
  if (!d || keys <= d.originalMaxSeqLen) return settings;
  const base = dynamicNtkBase(d.base, settings.dim, d.factor, d.originalMaxSeqLen, keys);
  return { ...settings, invFreq: plainInverseFrequencies(settings.dim, base).map(Math.fround) };
}

/** x-transformers' xPos `scale` buffer: (2i + 0.4·dim) / (1.4·dim), i < dim/2. */
export function xposZeta(dim: number): Float64Array {
  return Float64Array.from({ length: dim / 2 }, (_, i) => (2 * i + 0.4 * dim) / (1.4 * dim));
}
