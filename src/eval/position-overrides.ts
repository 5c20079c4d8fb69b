/**
 * Eval-time changes to a trained model's position settings: the rotary frequency scalings the config
 * supports (linear interpolation, NTK-aware base rescale, dynamic NTK, YaRN), xPos on or off, and the
 * number of ALiBi heads. None of them changes a parameter, so any checkpoint can be evaluated under any of
 * them. Problems are reported with the flag that caused them.
 */
import { ConfigError, resolveConfig, type AndromedaConfig, type AndromedaConfigInput } from '../model/config.js';

export interface PositionOverrides {
  /** --rotary-interpolation: positions divided by this (linear position interpolation). */
  readonly interpolation?: number;
  /** --rotary-ntk: static NTK-aware rescale, base · f^(dim / (dim − 2)). */
  readonly ntk?: number;
  /** --rotary-dynamic-ntk: NTK rescale that grows with the number of keys beyond the original length. */
  readonly dynamicNtk?: number;
  /** --rotary-yarn: YaRN factor. */
  readonly yarn?: number;
  /** --original-length: the length the scalings extend from (YaRN, dynamic NTK). */
  readonly originalLength?: number;
  /** --xpos on|off. */
  readonly xpos?: boolean;
  /** --alibi-heads: the first n heads get ALiBi, 0 turns it off. */
  readonly alibiHeads?: number;
}

export const SCALING_FLAGS = {
  interpolation: '--rotary-interpolation',
  ntk: '--rotary-ntk',
  dynamicNtk: '--rotary-dynamic-ntk',
  yarn: '--rotary-yarn',
} as const;

export class PositionOverrideError extends Error {
  override name = 'PositionOverrideError';
}

/** True when no override is given. */
export function noOverrides(o: PositionOverrides): boolean {
  return Object.values(o).every((v) => v === undefined);
}

/**
 * The checks that need no model: numbers in range, one rotary scaling at a time, --original-length only with a
 * scaling that reads it. Returns the scalings given.
 */
export function validatePositionOverrides(o: PositionOverrides): (keyof typeof SCALING_FLAGS)[] {
  const scalings = (Object.keys(SCALING_FLAGS) as (keyof typeof SCALING_FLAGS)[]).filter((k) => o[k] !== undefined);
  if (scalings.length > 1)
    throw new PositionOverrideError(
      `give one rotary scaling at a time, not ${scalings.map((k) => SCALING_FLAGS[k]).join(' and ')}`,
    );
  for (const key of scalings) {
    const value = o[key]!;
    if (!(Number.isFinite(value) && value >= 1))
      throw new PositionOverrideError(`${SCALING_FLAGS[key]} must be a number ≥ 1, got ${value}`);
  }
  if (o.originalLength !== undefined) {
    if (!Number.isInteger(o.originalLength) || o.originalLength < 1)
      throw new PositionOverrideError(`--original-length must be a positive integer, got ${o.originalLength}`);
    if (o.yarn === undefined && o.dynamicNtk === undefined)
      throw new PositionOverrideError('--original-length applies to --rotary-yarn or --rotary-dynamic-ntk; give one');
  }
  if (o.alibiHeads !== undefined && !(Number.isInteger(o.alibiHeads) && o.alibiHeads >= 0))
    throw new PositionOverrideError(`--alibi-heads must be a non-negative integer, got ${o.alibiHeads}`);
  return scalings;
}

/**
 * The config with the overrides applied. A rotary scaling given replaces whatever scaling the model had
 * (one at a time); `defaultOriginalLength` (the training length) is where YaRN and dynamic NTK start when
 * --original-length is not given.
 */
export function applyPositionOverrides(
  config: AndromedaConfig,
  o: PositionOverrides,
  defaultOriginalLength: number,
): AndromedaConfig {
  const scalings = validatePositionOverrides(o);
  if (
    o.alibiHeads !== undefined &&
    !(Number.isInteger(o.alibiHeads) && o.alibiHeads >= 0 && o.alibiHeads <= config.heads)
  )
    throw new PositionOverrideError(
      `--alibi-heads must be an integer from 0 to the model's ${config.heads} heads, got ${o.alibiHeads}`,
    );
  const rotaryFlag = scalings.length ? SCALING_FLAGS[scalings[0]!] : o.xpos !== undefined ? '--xpos' : null;
  if (rotaryFlag && !config.rotary)
    throw new PositionOverrideError(`${rotaryFlag}: the model has no rotary embedding to change`);

  const input: Record<string, unknown> = { ...config };
  if (o.alibiHeads !== undefined) input.alibiHeads = o.alibiHeads;
  if (config.rotary) {
    const original = o.originalLength ?? defaultOriginalLength;
    let rotary: Record<string, unknown> = { ...config.rotary };
    if (scalings.length) {
      rotary = {
        ...rotary,
        interpolationFactor: 1,
        ntkBaseRescale: 1,
        yarn: null,
        llama3: null,
        dynamicNtk: null,
        longRope: null,
      };
      if (o.interpolation !== undefined) rotary.interpolationFactor = o.interpolation;
      if (o.ntk !== undefined) rotary.ntkBaseRescale = o.ntk;
      if (o.dynamicNtk !== undefined) rotary.dynamicNtk = { factor: o.dynamicNtk, originalMaxSeqLen: original };
      if (o.yarn !== undefined) rotary.yarn = { factor: o.yarn, originalMaxSeqLen: original };
    }
    if (o.xpos !== undefined) rotary.xpos = o.xpos;
    input.rotary = rotary;
  }
  try {
    return resolveConfig(input as AndromedaConfigInput);
  } catch (error) {
    if (error instanceof ConfigError) throw new PositionOverrideError(`the position flags: ${error.message}`);
    throw error;
  }
}

/** One line naming a config's position settings, for tables and plots. */
export function describePositions(c: AndromedaConfig): string {
  const parts: string[] = [];
  parts.push(c.alibiHeads > 0 ? `ALiBi on ${c.alibiHeads}/${c.heads} heads` : 'no ALiBi');
  const r = c.rotary;
  if (!r) parts.push('no rotary');
  else {
    let rotary = `rotary dim ${r.dim} base ${r.base}`;
    if (r.xpos) rotary += ', xPos';
    if (r.interpolationFactor !== 1) rotary += `, interpolation ×${r.interpolationFactor}`;
    if (r.ntkBaseRescale !== 1) rotary += `, NTK ×${r.ntkBaseRescale}`;
    if (r.dynamicNtk) rotary += `, dynamic NTK ×${r.dynamicNtk.factor} from ${r.dynamicNtk.originalMaxSeqLen}`;
    if (r.yarn) rotary += `, YaRN ×${r.yarn.factor} from ${r.yarn.originalMaxSeqLen}`;
    if (r.llama3) rotary += `, Llama 3 scaling ×${r.llama3.factor} from ${r.llama3.originalMaxSeqLen}`;
    if (r.longRope) rotary += `, LongRoPE from ${r.longRope.originalMaxSeqLen}`;
    parts.push(rotary);
  }
  return parts.join('; ');
}
