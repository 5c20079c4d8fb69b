/**
 * The training run's settings: defaults, a JSON config file, command-line overrides, validation.
 * The resolved config is saved in every checkpoint so `--resume` continues the same run.
 */
import { JSON_FILE_LIMIT, readBoundedText } from '../io/bounded-read.js';

export interface TrainConfig {
  /** Tokenized dataset directories from `andromeda tokenize`: "dir", "name=dir" or "name=dir@weight". */
  data: string[];
  /** Raw text files/directories/JSONL to tokenize on the fly (into <out>/data). */
  inputs: string[];
  /** Tokenizer for on-the-fly tokenization and the default corpus: byte, bpe:<vocab>, or a path. */
  tokenizer: string;
  /** JSONL field holding the text (on-the-fly tokenization). */
  jsonlField: string;
  /** Fraction of documents held out when tokenizing on the fly. */
  valFraction: number;

  /** Model preset: tiny, small, orca, andromeda-3b. */
  preset: string;
  /** Overrides of the preset's config (e.g. {"depth": 2}). */
  model: Record<string, unknown>;

  steps: number;
  /** Sequences per micro-batch. */
  batchSize: number;
  seqLen: number;
  /** Micro-batches per optimizer step (gradient accumulation). */
  gradAccum: number;
  lr: number;
  /** Floor of the cosine decay as a fraction of the peak (StableLM: 0.04). */
  minLrRatio: number;
  warmup: number;
  /** Final steps of linear decay to zero (0: none). */
  cooldown: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Global gradient-norm clipping threshold (0: off). */
  clip: number;
  /** adamw (float32 moments) or adamw8bit (8-bit block-quantized moments, src/optim/adamw8bit.ts). */
  optimizer: string;

  evalEvery: number;
  /** Held-out tokens per periodic evaluation (the first ones, in a fixed order). */
  evalTokens: number;
  /** Held-out tokens of the final evaluation; 0 means the whole held-out split. */
  finalEvalTokens: number;
  checkpointEvery: number;
  keepCheckpoints: number;

  out: string;
  /** auto (CUDA when available), cpu, cuda, cuda:N. */
  device: string;
  /** auto, float32 or bfloat16 (activations; master weights and optimizer stay float32). */
  dtype: string;
  seed: number;
  /**
   * Stop (with a checkpoint) after this many minutes of training; 0: no limit. The steps it allows are planned
   * (step-plan.ts).
   */
  maxMinutes: number;
  /** Attention and positions reset at document boundaries inside packed rows. */
  segments: boolean;
  /** Stop after this many non-finite steps in a row. */
  maxBadSteps: number;
  /** Recompute each block in the backward pass instead of keeping its activations (long sequences, big models). */
  activationCheckpointing: boolean;
}

export const DEFAULT_CONFIG: TrainConfig = {
  data: [],
  inputs: [],
  tokenizer: 'byte',
  jsonlField: 'text',
  valFraction: 0.01,
  preset: 'tiny',
  model: {},
  steps: 1000,
  batchSize: 8,
  seqLen: 256,
  gradAccum: 1,
  lr: 1e-3,
  minLrRatio: 0.04,
  warmup: 100,
  cooldown: 0,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  clip: 1,
  optimizer: 'adamw',
  evalEvery: 100,
  evalTokens: 32768,
  finalEvalTokens: 0,
  checkpointEvery: 100,
  keepCheckpoints: 2,
  out: 'runs/andromeda',
  device: 'auto',
  dtype: 'auto',
  seed: 0,
  maxMinutes: 0,
  segments: true,
  maxBadSteps: 5,
  activationCheckpointing: false,
};

/** The optimizers `optimizer` may name. */
export const OPTIMIZERS = ['adamw', 'adamw8bit'] as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Kind = 'int' | 'posint' | 'number' | 'posnumber' | 'fraction' | 'string' | 'bool' | 'strings' | 'object';

/** How each key is checked (and parsed from a command-line string). */
export const CONFIG_KINDS: Record<keyof TrainConfig, Kind> = {
  data: 'strings',
  inputs: 'strings',
  tokenizer: 'string',
  jsonlField: 'string',
  valFraction: 'fraction',
  preset: 'string',
  model: 'object',
  steps: 'posint',
  batchSize: 'posint',
  seqLen: 'posint',
  gradAccum: 'posint',
  lr: 'posnumber',
  minLrRatio: 'fraction',
  warmup: 'int',
  cooldown: 'int',
  weightDecay: 'number',
  beta1: 'fraction',
  beta2: 'fraction',
  eps: 'posnumber',
  clip: 'number',
  optimizer: 'string',
  evalEvery: 'int',
  evalTokens: 'int',
  finalEvalTokens: 'int',
  checkpointEvery: 'int',
  keepCheckpoints: 'int',
  out: 'string',
  device: 'string',
  dtype: 'string',
  seed: 'int',
  maxMinutes: 'number',
  segments: 'bool',
  maxBadSteps: 'posint',
  activationCheckpointing: 'bool',
};

/**
 * Upper bounds, checked before anything is allocated: beyond them a run cannot finish (steps,
 * minutes) or its batches cannot be indexed (tokens, held as int32 counts by the engines).
 */
export const MAX_STEPS = 1_000_000_000;
export const MAX_TOKENS = 2 ** 31 - 1;
const UPPER_BOUNDS: Partial<Record<keyof TrainConfig, number>> = {
  steps: MAX_STEPS,
  warmup: MAX_STEPS,
  cooldown: MAX_STEPS,
  evalEvery: MAX_STEPS,
  checkpointEvery: MAX_STEPS,
  keepCheckpoints: MAX_STEPS,
  maxBadSteps: MAX_STEPS,
  batchSize: MAX_TOKENS,
  seqLen: MAX_TOKENS,
  gradAccum: 1_000_000,
  evalTokens: MAX_TOKENS,
  finalEvalTokens: MAX_TOKENS,
  maxMinutes: 366 * 24 * 60,
};

/** kebab-case flag name of a config key: batchSize → batch-size. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Parses a command-line string for `key`; throws ConfigError naming the flag. */
export function parseFlagValue(key: keyof TrainConfig, raw: string): unknown {
  const kind = CONFIG_KINDS[key];
  const flag = `--${flagName(key)}`;
  if (kind === 'string') return raw;
  if (kind === 'strings') return [raw];
  if (kind === 'bool') {
    if (['true', '1', 'yes', 'on'].includes(raw)) return true;
    if (['false', '0', 'no', 'off'].includes(raw)) return false;
    throw new ConfigError(`${flag} must be true or false, got "${raw}"`);
  }
  if (kind === 'object') {
    try {
      return JSON.parse(raw);
    } catch {
      throw new ConfigError(`${flag} must be a JSON object, got "${raw}"`);
    }
  }
  const n = raw.trim() === '' ? NaN : Number(raw);
  checkValue(key, n, flag, raw);
  return n;
}

function checkValue(key: keyof TrainConfig, value: unknown, where: string, shown: unknown = value): void {
  const kind = CONFIG_KINDS[key];
  const fail = (what: string): never => {
    throw new ConfigError(`${where} must be ${what}, got ${JSON.stringify(shown)}`);
  };
  switch (kind) {
    case 'int':
      if (!(Number.isInteger(value) && (value as number) >= 0)) fail('an integer ≥ 0');
      break;
    case 'posint':
      if (!(Number.isInteger(value) && (value as number) >= 1)) fail('a positive integer');
      break;
    case 'number':
      if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0)) fail('a number ≥ 0');
      break;
    case 'posnumber':
      if (!(typeof value === 'number' && Number.isFinite(value) && value > 0)) fail('a positive number');
      break;
    case 'fraction':
      if (!(typeof value === 'number' && value >= 0 && value < 1)) fail('a number in [0, 1)');
      break;
    case 'string':
      if (typeof value !== 'string' || value === '') fail('a non-empty string');
      break;
    case 'bool':
      if (typeof value !== 'boolean') fail('true or false');
      break;
    case 'strings':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) fail('a list of strings');
      break;
    case 'object':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('a JSON object');
      break;
  }
  const bound = UPPER_BOUNDS[key];
  if (bound !== undefined && (value as number) > bound) fail(`at most ${bound}`);
}

/** Checks a whole config (types, ranges, and relations between settings). */
export function validateConfig(config: TrainConfig, where = 'config'): TrainConfig {
  for (const key of Object.keys(CONFIG_KINDS) as (keyof TrainConfig)[])
    checkValue(key, config[key], `${where}: ${key}`);
  if (config.warmup + config.cooldown > config.steps)
    throw new ConfigError(
      `${where}: warmup (${config.warmup}) + cooldown (${config.cooldown}) exceed steps (${config.steps})`,
    );
  if (!(OPTIMIZERS as readonly string[]).includes(config.optimizer))
    throw new ConfigError(`${where}: optimizer must be ${OPTIMIZERS.join(' or ')}, got "${config.optimizer}"`);
  if (!['auto', 'float32', 'bfloat16'].includes(config.dtype))
    throw new ConfigError(`${where}: dtype must be auto, float32 or bfloat16, got "${config.dtype}"`);
  if (!/^(auto|cpu|cuda(:\d+)?)$/.test(config.device))
    throw new ConfigError(`${where}: device must be auto, cpu, cuda or cuda:N, got "${config.device}"`);
  if (config.data.length > 0 && config.inputs.length > 0)
    throw new ConfigError(`${where}: give either tokenized --data directories or raw inputs to tokenize, not both`);
  for (const spec of config.data) parseDataSpec(spec);
  if (config.batchSize * config.seqLen > MAX_TOKENS) {
    throw new ConfigError(
      `${where}: a micro-batch of ` +
        `--batch-size ${config.batchSize} × --seq-len ${config.seqLen} = ${config.batchSize * config.seqLen} tokens ` +
        `exceeds the limit of ${MAX_TOKENS}; lower --batch-size (--grad-accum accumulates several micro-batches ` +
        `per step)`,
    );
  }
  return config;
}

/** Reads a JSON config file (any subset of TrainConfig keys; unknown keys are errors). */
export function readConfigFile(path: string): Partial<TrainConfig> {
  let text: string;
  try {
    text = readBoundedText(path, JSON_FILE_LIMIT);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT'
        ? `config file not found: ${path}`
        : `cannot read config file ${path}: ${(error as Error).message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConfigError(`config file ${path} must hold a JSON object of settings`);
  const out: Partial<TrainConfig> = {};
  for (const [k, v] of Object.entries(json)) {
    const key = (
      k in CONFIG_KINDS ? k : k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
    ) as keyof TrainConfig;
    if (!(key in CONFIG_KINDS))
      throw new ConfigError(
        `config file ${path}: unknown setting "${k}" (known: ${Object.keys(CONFIG_KINDS).join(', ')})`,
      );
    const value = CONFIG_KINDS[key] === 'strings' && typeof v === 'string' ? [v] : v;
    checkValue(key, value, `config file ${path}: ${k}`);
    (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

export interface DataSpec {
  name?: string;
  dir: string;
  weight?: number;
}

/** "dir", "name=dir", "dir@2" or "name=dir@2". */
export function parseDataSpec(spec: string): DataSpec {
  const m = /^(?:([A-Za-z0-9_.-]+)=)?(.+?)(?:@([0-9.eE+-]+))?$/.exec(spec);
  if (!m || !m[2]) throw new ConfigError(`bad --data "${spec}": write a directory, name=dir, or name=dir@weight`);
  const weight = m[3] === undefined ? undefined : Number(m[3]);
  if (weight !== undefined && !(weight > 0 && Number.isFinite(weight)))
    throw new ConfigError(`bad --data "${spec}": the weight must be a positive number`);
  return { name: m[1], dir: m[2], weight };
}

/** Tokens per optimizer step. */
export function tokensPerStep(c: TrainConfig): number {
  return c.batchSize * c.seqLen * c.gradAccum;
}
