/**
 * transformers config.json → our model options, per supported architecture. The families share one shape
 * (token embedding → pre-norm decoder layers with rotary attention and a gated MLP → final norm → logits);
 * what differs is read here: the norm (RMSNorm, StableLM's LayerNorm with bias, Gemma's RMSNorm scaling by
 * 1 + weight), which projections carry biases, Qwen3's per-head RMS qk-norm, Mistral's and Phi-3's sliding
 * window, StableLM's partial rotary and parallel residual, Gemma's GeGLU (tanh GELU) and embedding scale
 * sqrt(hidden_size), Gemma 2's logit soft-caps, query_pre_attn_scalar, four norms per layer and window on every
 * other layer, and the rope_scaling kind (Phi-3's LongRoPE among them). Settings that would change the
 * function computed and that we do not have are errors; those that only matter for training or speed are
 * ignored.
 */
import { ConfigError, type AndromedaConfigInput } from './config.js';

export const HF_ARCHITECTURES = [
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
  'Qwen3ForCausalLM',
  'StableLmForCausalLM',
  'Phi3ForCausalLM',
  'GemmaForCausalLM',
  'Gemma2ForCausalLM',
] as const;
export type HuggingFaceArchitecture = (typeof HF_ARCHITECTURES)[number];

/** A transformers config.json: free-form, read key by key. */
export type HuggingFaceConfigFile = Readonly<Record<string, unknown>>;

export interface HuggingFaceModelConfig {
  readonly input: AndromedaConfigInput;
  readonly architecture: HuggingFaceArchitecture;
  /** The logits reuse the embedding (lm_head.weight need not be stored). */
  readonly tiedEmbeddings: boolean;
  /**
   * Multiplies the rotated rows of each query and key head at import (1: none). transformers scales the rotary
   * cos/sin by YaRN's or LongRoPE's attention factor a, which with partial rotary scales only the rotated part of
   * q·k by a²; rotation being linear, a·rotate(x) = rotate(a·x), so the same comes from those weight rows × a.
   */
  readonly rotatedQueryKeyScale: number;
  readonly warnings: string[];
}

/** Where an attention factor that our rotary cannot apply (partial rotary) goes instead: see rotatedQueryKeyScale. */
interface AttentionFactorFold {
  scale: number;
}

/** What differs between the families, read from the config by each family's own defaults. */
interface FamilyTraits {
  readonly norm: 'rmsnorm' | 'layernorm';
  readonly epsKey: 'rms_norm_eps' | 'layer_norm_eps';
  readonly epsDefault: number;
  readonly qkvBias: (f: Reader) => boolean;
  readonly outputBias: (f: Reader) => boolean;
  readonly mlpBias: (f: Reader) => boolean;
  readonly qkRmsNorm: boolean;
  /** head_dim from the config, or always hidden_size / heads (StableLM ignores head_dim). */
  readonly headDimFromConfig: boolean;
  readonly partialRotaryDefault: number;
  readonly parallelResidual: (f: Reader) => boolean;
  readonly slidingWindow: (f: Reader) => number | null;
  /** head_dim when the config has none (and headDimFromConfig): hidden_size / heads, or a fixed default. */
  readonly headDimDefault?: number;
  readonly tiedDefault?: boolean;
  /** The gated MLP's activation (SwiGLU unless given). */
  readonly activation?: (f: Reader) => Pick<AndromedaConfigInput, 'ffActivation' | 'geluApproximation'>;
  /** RMSNorm scales by (offset + weight): Gemma's 1. */
  readonly normWeightOffset?: number;
  /** The embeddings are multiplied by sqrt(hidden_size) (Gemma). */
  readonly scaledEmbedding?: boolean;
  /** rope_scaling kinds this family reads as another (Phi-3: "su" and "yarn" are LongRoPE). */
  readonly ropeAliases?: Readonly<Record<string, string>>;
  /** Settings only this family has (Gemma 2's soft-caps, attention scale, window layers and four norms). */
  readonly extra?: (f: Reader, depth: number) => Partial<AndromedaConfigInput>;
}

/** Llama's MLP: silu (swish) gate. */
const swiglu = (f: Reader): Pick<AndromedaConfigInput, 'ffActivation' | 'geluApproximation'> => {
  const hiddenAct = f.raw('hidden_act') ?? 'silu';
  if (hiddenAct !== 'silu' && hiddenAct !== 'swish')
    f.error(`hidden_act ${JSON.stringify(hiddenAct)} is not supported (the gated MLP is SwiGLU: silu)`);
  return { ffActivation: 'swiglu' };
};

/**
 * Gemma's MLP: a tanh-approximated GELU gate. transformers 4.x reads hidden_activation (tanh when unset),
 * 5.x hidden_act with its legacy "gelu" meaning the tanh form; both agree on these spellings.
 */
const gemmaGeglu = (f: Reader): Pick<AndromedaConfigInput, 'ffActivation' | 'geluApproximation'> => {
  const key = f.has('hidden_activation') ? 'hidden_activation' : 'hidden_act';
  const act = f.raw(key) ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu')
    f.error(`${key} ${JSON.stringify(act)} is not supported (Gemma's MLP is GeGLU with gelu_pytorch_tanh)`);
  return { ffActivation: 'geglu', geluApproximation: 'tanh' };
};

/** Gemma 2's MLP: transformers' Gemma2MLP reads hidden_activation alone (a config's hidden_act is not used). */
const gemma2Geglu = (f: Reader): Pick<AndromedaConfigInput, 'ffActivation' | 'geluApproximation'> => {
  const act = f.raw('hidden_activation') ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh')
    f.error(
      `hidden_activation ${JSON.stringify(act)} is not supported (Gemma 2's MLP is GeGLU with gelu_pytorch_tanh)`,
    );
  return { ffActivation: 'geglu', geluApproximation: 'tanh' };
};

/** Qwen2/Qwen3 declare a window but only use it with use_sliding_window (per layer): not supported. */
const qwenWindow = (f: Reader): null => {
  if (f.bool('use_sliding_window', false))
    f.error('use_sliding_window = true (a sliding window on some layers only) is not supported');
  return null;
};

/** A soft-cap setting: transformers' default when absent, null for none, else a positive number. */
const softCap = (f: Reader, key: string, fallback: number): number | null => {
  if (f.raw(key) === null) return null;
  const cap = f.number(key, fallback);
  if (Number.isFinite(cap) && cap <= 0) f.error(`${key} must be positive (or null for none), got ${cap}`);
  return cap;
};

/**
 * Gemma 2 beyond Gemma: attention and final logit soft-caps (transformers' defaults 50 and 30; null turns one
 * off), the q·k scale query_pre_attn_scalar^-0.5 (default 256), four norms
 * per layer, and the sliding window on the layers that layer_types names "sliding_attention" — by default (as
 * transformers' Gemma2Config fills it) the even ones, 0, 2, 4, …; other patterns are refused.
 */
const gemma2Extra = (f: Reader, depth: number): Partial<AndromedaConfigInput> => {
  if (f.bool('use_bidirectional_attention', false))
    f.error('use_bidirectional_attention = true (attention to later tokens) is not supported: the model is causal');
  const scalar = f.number('query_pre_attn_scalar', 256);
  if (Number.isFinite(scalar) && scalar <= 0) f.error(`query_pre_attn_scalar must be positive, got ${scalar}`);
  const types = f.raw('layer_types');
  if (types !== undefined && types !== null) {
    const even = Array.from({ length: depth }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention'));
    if (!Array.isArray(types) || types.length !== depth || types.some((t, i) => t !== even[i]))
      f.error(
        `layer_types ${JSON.stringify(types)} is not supported: the sliding window applies to every other layer ` +
          `from layer 0 (${JSON.stringify(even.slice(0, 4))}…), as Gemma 2 has it`,
      );
  }
  return {
    attentionScale: scalar ** -0.5,
    attentionSoftCap: softCap(f, 'attn_logit_softcapping', 50),
    logitSoftCap: softCap(f, 'final_logit_softcapping', 30),
    slidingWindowLayers: 'even',
    sandwichNorm: true,
  };
};

/** What most families share: Llama's layout (RMSNorm, no biases, head_dim from the config, full rotary). */
const LLAMA_LIKE: FamilyTraits = {
  norm: 'rmsnorm',
  epsKey: 'rms_norm_eps',
  epsDefault: 1e-6,
  qkvBias: () => false,
  outputBias: () => false,
  mlpBias: () => false,
  qkRmsNorm: false,
  headDimFromConfig: true,
  partialRotaryDefault: 1,
  parallelResidual: () => false,
  slidingWindow: () => null,
};

/** attention_bias switches the q/k/v and output biases together (Llama, Qwen3, Gemma). */
const attentionBias = (f: Reader): boolean => f.bool('attention_bias', false);

/** Gemma and Gemma 2: GeGLU, norms scaling by 1 + weight, embeddings scaled, tied by default, head_dim 256. */
const GEMMA_LIKE: FamilyTraits = {
  ...LLAMA_LIKE,
  qkvBias: attentionBias,
  outputBias: attentionBias,
  headDimDefault: 256,
  tiedDefault: true,
  normWeightOffset: 1,
  scaledEmbedding: true,
};

const FAMILIES: Record<HuggingFaceArchitecture, FamilyTraits> = {
  LlamaForCausalLM: {
    ...LLAMA_LIKE,
    qkvBias: attentionBias,
    outputBias: attentionBias,
    mlpBias: (f) => f.bool('mlp_bias', false),
  },
  MistralForCausalLM: { ...LLAMA_LIKE, slidingWindow: (f) => f.optionalInteger('sliding_window') },
  Qwen2ForCausalLM: { ...LLAMA_LIKE, qkvBias: () => true, slidingWindow: qwenWindow },
  Qwen3ForCausalLM: {
    ...LLAMA_LIKE,
    qkvBias: attentionBias,
    outputBias: attentionBias,
    qkRmsNorm: true,
    slidingWindow: qwenWindow,
  },
  StableLmForCausalLM: {
    ...LLAMA_LIKE,
    norm: 'layernorm',
    epsKey: 'layer_norm_eps',
    epsDefault: 1e-5,
    qkvBias: (f) => f.bool('use_qkv_bias', false),
    headDimFromConfig: false,
    partialRotaryDefault: 0.25,
    parallelResidual: (f) => f.bool('use_parallel_residual', false),
  },
  Phi3ForCausalLM: {
    ...LLAMA_LIKE,
    epsDefault: 1e-5,
    slidingWindow: (f) => f.optionalInteger('sliding_window'),
    ropeAliases: { su: 'longrope', yarn: 'longrope' },
  },
  GemmaForCausalLM: { ...GEMMA_LIKE, activation: gemmaGeglu },
  Gemma2ForCausalLM: {
    ...GEMMA_LIKE,
    // transformers' default window is 4096; an explicit null turns it off.
    slidingWindow: (f) => (f.raw('sliding_window') === undefined ? 4096 : f.optionalInteger('sliding_window')),
    activation: gemma2Geglu,
    extra: gemma2Extra,
  },
};

/** Typed reads of config.json keys that collect every problem instead of stopping at the first. */
class Reader {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];

  constructor(private readonly file: HuggingFaceConfigFile) {}

  error(message: string): void {
    this.errors.push(message);
  }

  warn(message: string): void {
    this.warnings.push(message);
  }

  has(key: string): boolean {
    return this.file[key] !== undefined && this.file[key] !== null;
  }

  raw(key: string): unknown {
    return this.file[key];
  }

  number(key: string, fallback?: number): number {
    const v = this.file[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      this.errors.push(`${key} must be a number, got ${JSON.stringify(v)}`);
      return NaN;
    }
    return v;
  }

  integer(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (Number.isFinite(v) && !Number.isInteger(v)) this.errors.push(`${key} must be an integer, got ${v}`);
    return v;
  }

  optionalInteger(key: string): number | null {
    return this.has(key) ? this.integer(key) : null;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.file[key] ?? fallback;
    if (typeof v !== 'boolean') {
      this.errors.push(`${key} must be true or false, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return v;
  }
}

/** The one line naming what is supported, for any architecture outside it. */
export function unsupportedArchitectureMessage(source: string, architecture: unknown): string {
  return (
    `${source}: architecture ${JSON.stringify(architecture)} is not supported; supported: ` +
    `${HF_ARCHITECTURES.join(', ')}`
  );
}

export function configFromHuggingFace(file: HuggingFaceConfigFile, source = 'config.json'): HuggingFaceModelConfig {
  const architectures = file.architectures;
  if (!Array.isArray(architectures) || architectures.length === 0)
    throw new ConfigError(
      `${source}: no "architectures" list (a transformers config.json names its model class there); supported: ` +
        HF_ARCHITECTURES.join(', '),
    );
  const architecture = architectures[0] as unknown;
  if (!HF_ARCHITECTURES.includes(architecture as HuggingFaceArchitecture))
    throw new ConfigError(unsupportedArchitectureMessage(source, architecture));
  const family = FAMILIES[architecture as HuggingFaceArchitecture];
  const f = new Reader(file);

  const dim = f.integer('hidden_size');
  const heads = f.integer('num_attention_heads');
  const kvHeads = f.integer('num_key_value_heads', heads);
  const activation = (family.activation ?? swiglu)(f);
  const headDim =
    family.headDimFromConfig && f.has('head_dim')
      ? f.integer('head_dim')
      : (family.headDimDefault ?? Math.floor(dim / Math.max(heads, 1)));
  if (!family.headDimFromConfig && dim % heads !== 0)
    f.error(`hidden_size ${dim} is not a multiple of num_attention_heads ${heads}`);
  if (architecture === 'StableLmForCausalLM' && f.bool('qk_layernorm', false))
    f.error('qk_layernorm = true (per-head LayerNorm of q and k, StableLM 2 12B) is not supported');
  const tiedEmbeddings = f.bool('tie_word_embeddings', family.tiedDefault ?? false);
  const maxSeqLen = f.integer('max_position_embeddings', 4096);
  const fold: AttentionFactorFold = { scale: 1 };
  const rotary = rotaryOptions(f, family, headDim, maxSeqLen, fold);
  if (fold.scale !== 1 && family.qkRmsNorm)
    f.error(
      'a rope attention factor with partial rotary is applied through the query/key weights, which the per-head ' +
        'q/k norm would undo: not supported',
    );
  const slidingWindow = family.slidingWindow(f);
  const depth = f.integer('num_hidden_layers');
  const extra = family.extra?.(f, depth) ?? {};

  if (f.errors.length)
    throw new ConfigError(`${source}: cannot import this ${architecture}:\n  - ${f.errors.join('\n  - ')}`);
  const qkvBias = family.qkvBias(f);
  const input: AndromedaConfigInput = {
    vocabSize: f.integer('vocab_size'),
    dim,
    depth,
    heads,
    headDim,
    kvHeads,
    maxSeqLen,
    ffInnerDim: f.integer('intermediate_size'),
    ...activation,
    feedForwardBias: family.mlpBias(f),
    qkvBias,
    attentionOutputBias: family.outputBias(f),
    norm: family.norm,
    normEps: f.number(family.epsKey, family.epsDefault),
    normWeightOffset: family.normWeightOffset ?? 0,
    embeddingScale: family.scaledEmbedding ? Math.sqrt(dim) : 1,
    normPosition: 'pre',
    parallelBlocks: family.parallelResidual(f),
    tiedEmbeddings,
    qkRmsNorm: family.qkRmsNorm,
    slidingWindow,
    rotary,
    ...extra,
  };
  if (f.errors.length)
    throw new ConfigError(`${source}: cannot import this ${architecture}:\n  - ${f.errors.join('\n  - ')}`);
  return {
    input,
    architecture: architecture as HuggingFaceArchitecture,
    tiedEmbeddings,
    rotatedQueryKeyScale: fold.scale,
    warnings: f.warnings,
  };
}

type RotaryInput = Exclude<AndromedaConfigInput['rotary'], boolean | null | undefined>;

/**
 * Rotary settings from rope_theta / rope_scaling (transformers 4.x) or rope_parameters (5.x, theta inside),
 * following transformers' modeling_rope_utils: the rotated width is head_dim · partial_rotary_factor.
 */
function rotaryOptions(
  f: Reader,
  family: FamilyTraits,
  headDim: number,
  maxSeqLen: number,
  fold: AttentionFactorFold,
): RotaryInput {
  const parameters = (f.raw('rope_parameters') ?? f.raw('rope_scaling') ?? null) as Record<string, unknown> | null;
  if (parameters !== null && (typeof parameters !== 'object' || Array.isArray(parameters))) {
    f.error(`rope_scaling must be an object or null, got ${JSON.stringify(parameters)}`);
    return {};
  }
  const p = parameters ?? {};
  const num = (key: string, fallback?: number): number => {
    const v = p[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      f.error(`rope_scaling.${key} must be a number, got ${JSON.stringify(v)}`);
      return NaN;
    }
    return v;
  };
  const base = typeof p.rope_theta === 'number' ? p.rope_theta : f.number('rope_theta', 10000);
  const partial =
    typeof p.partial_rotary_factor === 'number'
      ? p.partial_rotary_factor
      : f.number('partial_rotary_factor', family.partialRotaryDefault);
  const dim = Math.floor(headDim * partial);
  if (!(dim >= 2 && dim % 2 === 0))
    f.error(`head_dim ${headDim} × partial_rotary_factor ${partial} = ${dim} rotated dims: must be even and ≥ 2`);
  const given = p.rope_type ?? p.type ?? 'default';
  const kind = (typeof given === 'string' && family.ropeAliases?.[given]) || given;
  const rotary: RotaryInput = { dim, base };
  switch (kind) {
    case 'default':
      return rotary;
    case 'linear':
      return { ...rotary, interpolationFactor: num('factor') };
    case 'dynamic':
      return { ...rotary, dynamicNtk: { factor: num('factor'), originalMaxSeqLen: maxSeqLen } };
    case 'llama3':
      return {
        ...rotary,
        llama3: {
          factor: num('factor'),
          lowFreqFactor: num('low_freq_factor'),
          highFreqFactor: num('high_freq_factor'),
          originalMaxSeqLen: num('original_max_position_embeddings'),
        },
      };
    case 'yarn': {
      const original =
        typeof p.original_max_position_embeddings === 'number' ? p.original_max_position_embeddings : maxSeqLen;
      const factor = typeof p.factor === 'number' ? p.factor : maxSeqLen / original;
      if (
        typeof p.factor === 'number' &&
        typeof p.original_max_position_embeddings === 'number' &&
        factor !== maxSeqLen / original
      )
        f.warn(
          `rope_scaling yarn: factor ${factor} is used as given; transformers 4.x used ` +
            `max_position_embeddings / original_max_position_embeddings = ${maxSeqLen / original} instead`,
        );
      if (p.truncate === false)
        f.error('rope_scaling.truncate = false (YaRN without rounded ramp bounds) is not supported');
      const attentionFactor = foldedAttentionFactor(yarnAttentionFactor(p, factor), partial, fold);
      return {
        ...rotary,
        yarn: {
          factor,
          originalMaxSeqLen: original,
          betaFast: typeof p.beta_fast === 'number' && p.beta_fast ? p.beta_fast : 32,
          betaSlow: typeof p.beta_slow === 'number' && p.beta_slow ? p.beta_slow : 1,
          attentionFactor,
        },
      };
    }
    case 'longrope':
      return { ...rotary, longRope: longRopeOptions(f, p, dim, partial, maxSeqLen, fold) };
    default:
      f.error(
        `rope_scaling type ${JSON.stringify(kind)} is not supported ` +
          '(supported: default, linear, dynamic, llama3, yarn, longrope)',
      );
      return rotary;
  }
}

/**
 * LongRoPE as transformers 5 computes it: factor = rope factor, else max_position_embeddings /
 * original_max_position_embeddings; attention factor given, else sqrt(1 + ln(factor) / ln(original)) above 1.
 */
function longRopeOptions(
  f: Reader,
  p: Record<string, unknown>,
  rotaryDim: number,
  partial: number,
  maxSeqLen: number,
  fold: AttentionFactorFold,
): NonNullable<RotaryInput['longRope']> {
  const original =
    typeof p.original_max_position_embeddings === 'number'
      ? p.original_max_position_embeddings
      : f.integer('original_max_position_embeddings');
  const factor = typeof p.factor === 'number' ? p.factor : maxSeqLen / original;
  const attentionFactor = foldedAttentionFactor(
    typeof p.attention_factor === 'number'
      ? p.attention_factor
      : factor <= 1
        ? 1
        : Math.sqrt(1 + Math.log(factor) / Math.log(original)),
    partial,
    fold,
  );
  const factors = (key: string): number[] => {
    const v = p[key];
    if (
      !Array.isArray(v) ||
      v.length !== rotaryDim / 2 ||
      !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)
    ) {
      f.error(
        `rope_scaling.${key} must list ${rotaryDim / 2} positive numbers (one per rotated frequency), got ` +
          JSON.stringify(v),
      );
      return [];
    }
    return v as number[];
  };
  return {
    shortFactors: factors('short_factor'),
    longFactors: factors('long_factor'),
    originalMaxSeqLen: original,
    attentionFactor,
  };
}

/**
 * The attention factor our rotary applies (to the whole q·k): all of it with full rotary; with partial rotary
 * none, the factor going to the import's rotated weight rows instead (see rotatedQueryKeyScale).
 */
function foldedAttentionFactor(attentionFactor: number, partial: number, fold: AttentionFactorFold): number {
  if (partial === 1 || attentionFactor === 1) return attentionFactor;
  fold.scale = attentionFactor;
  return 1;
}

/** transformers' YaRN attention factor: given, or from mscale / mscale_all_dim, or 0.1·ln(factor) + 1. */
function yarnAttentionFactor(p: Record<string, unknown>, factor: number): number {
  if (typeof p.attention_factor === 'number') return p.attention_factor;
  const mscaleOf = (scale: number, m = 1): number => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  const mscale = typeof p.mscale === 'number' ? p.mscale : 0;
  const mscaleAllDim = typeof p.mscale_all_dim === 'number' ? p.mscale_all_dim : 0;
  if (mscale && mscaleAllDim) return mscaleOf(factor, mscale) / mscaleOf(factor, mscaleAllDim);
  return mscaleOf(factor);
}
