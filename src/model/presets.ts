/** Named configurations: the two published ones and two sized for CPUs. */
import { resolveConfig, type AndromedaConfig, type AndromedaConfigInput } from './config.js';

const PRESETS = {
  /** The Andromeda spec table: 2,461,369,600 parameters. */
  'andromeda-3b': {
    vocabSize: 50432,
    maxSeqLen: 8192,
    dim: 2560,
    depth: 32,
    heads: 24,
    headDim: 128,
    alibiHeads: 12,
    kvHeads: 1,
    rotary: { xpos: true },
    deepnorm: true,
    shiftTokens: 1,
    qkNorm: true,
    qkNormDimScale: true,
  },
  /** The hyperparameter note's small model: 36,655,648 parameters. */
  orca: {
    vocabSize: 20000,
    maxSeqLen: 8192,
    dim: 512,
    depth: 6,
    heads: 8,
    headDim: 64,
    alibiHeads: 4,
    kvHeads: 1,
    rotary: { xpos: true },
    deepnorm: true,
    shiftTokens: 1,
  },
  /** The CPU anchor's byte-level model (x-transformers defaults otherwise: pre-norm). */
  small: {
    vocabSize: 256,
    maxSeqLen: 256,
    dim: 256,
    depth: 4,
    heads: 4,
    headDim: 64,
    alibiHeads: 2,
    kvHeads: 1,
    rotary: { xpos: true },
    shiftTokens: 1,
  },
  /** Trains in minutes on two cores; byte vocabulary plus one end-of-text token by default. */
  tiny: {
    vocabSize: 257,
    maxSeqLen: 256,
    dim: 128,
    depth: 2,
    heads: 4,
    headDim: 32,
    alibiHeads: 2,
    kvHeads: 1,
    rotary: { xpos: true },
    shiftTokens: 1,
  },
} as const satisfies Record<string, AndromedaConfigInput>;

export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

/** The preset's settings, with `overrides` on top (e.g. the tokenizer's vocabSize). */
export function presetInput(name: string, overrides: Partial<AndromedaConfigInput> = {}): AndromedaConfigInput {
  if (!isPresetName(name)) throw new RangeError(`unknown model preset '${name}' (known: ${PRESET_NAMES.join(', ')})`);
  return { ...PRESETS[name], ...overrides } as AndromedaConfigInput;
}

export function presetConfig(name: string, overrides: Partial<AndromedaConfigInput> = {}): AndromedaConfig {
  return resolveConfig(presetInput(name, overrides));
}
