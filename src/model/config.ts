/**
 * The model configuration: every architecture choice of the spec plus the options beyond it. A
 * `AndromedaConfigInput` (partial, with shorthands such as `deepnorm`) resolves into a complete
 * `AndromedaConfig`, or fails with every problem listed and why it is one.
 */
import { totalmem } from 'node:os';

export type NormKind = 'layernorm' | 'rmsnorm';
export type FeedForwardActivation = 'gelu' | 'swiglu' | 'geglu';

export interface YarnConfig {
  /** Context extension factor s (≥ 1). */
  readonly factor: number;
  /** Context length the model was trained at. */
  readonly originalMaxSeqLen: number;
  /** Frequencies with more than betaFast rotations over the original context are not interpolated… */
  readonly betaFast: number;
  /** …those with fewer than betaSlow are fully interpolated; ramp in between. */
  readonly betaSlow: number;
  /** Logit temperature factor applied to q·k as its square; default 0.1·ln(s) + 1. */
  readonly attentionFactor: number;
}

/**
 * Llama 3.1's frequency-dependent scaling: wavelengths shorter than originalMaxSeqLen / highFreqFactor are
 * kept, longer than originalMaxSeqLen / lowFreqFactor divided by factor, and those between blended smoothly.
 */
export interface Llama3ScalingConfig {
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxSeqLen: number;
}

/**
 * Dynamic NTK scaling: once a sequence of L keys outgrows originalMaxSeqLen, the base becomes
 * base · (factor·L/originalMaxSeqLen − (factor − 1))^(dim/(dim − 2)) for that call (all keys rotated with it,
 * as a fresh forward over the whole sequence does); shorter sequences use the plain base.
 */
export interface DynamicNtkConfig {
  readonly factor: number;
  readonly originalMaxSeqLen: number;
}

/**
 * LongRoPE (Phi-3's "longrope", formerly "su"): per-frequency divisors, the short ones while a sequence's keys
 * fit originalMaxSeqLen and the long ones beyond it (chosen per call, like dynamic NTK), and a logit temperature
 * attentionFactor applied to q·k as its square, whatever the length.
 */
export interface LongRopeConfig {
  readonly shortFactors: readonly number[];
  readonly longFactors: readonly number[];
  readonly originalMaxSeqLen: number;
  readonly attentionFactor: number;
}

export interface RotaryConfig {
  /** Rotated features per head; default max(headDim / 2, 32) as in x-transformers. */
  readonly dim: number;
  readonly base: number;
  readonly xpos: boolean;
  readonly xposScaleBase: number;
  /** Positions are divided by this (linear position interpolation), ≥ 1. */
  readonly interpolationFactor: number;
  /** NTK-aware rescale: base · factor^(dim / (dim − 2)). */
  readonly ntkBaseRescale: number;
  readonly yarn: YarnConfig | null;
  readonly llama3: Llama3ScalingConfig | null;
  readonly dynamicNtk: DynamicNtkConfig | null;
  readonly longRope: LongRopeConfig | null;
}

export interface AndromedaConfig {
  readonly vocabSize: number;
  readonly dim: number;
  readonly depth: number;
  readonly heads: number;
  readonly headDim: number;
  /** Key/value heads: 1 is multi-query attention, `heads` is multi-head, in between grouped-query. */
  readonly kvHeads: number;
  /** The context length the model is meant for (nothing in the model limits it). */
  readonly maxSeqLen: number;
  /** Feed-forward inner width is floor(dim · ffMult), unless ffInnerDim gives it. */
  readonly ffMult: number;
  /** Explicit feed-forward inner width (checkpoints whose width is no clean multiple of dim); null: from ffMult. */
  readonly ffInnerDim: number | null;
  /** Biases on the feed-forward projections (x-transformers: yes; Llama-style gated MLPs: no). */
  readonly feedForwardBias: boolean;
  /** Biases on the query, key and value projections (Qwen2, StableLM). */
  readonly qkvBias: boolean;
  /** Bias on the attention output projection (Llama's attention_bias sets it with qkvBias). */
  readonly attentionOutputBias: boolean;
  readonly ffActivation: FeedForwardActivation;
  /** GELU (plain or gated) exactly ('none': the erf form) or by PyTorch's tanh approximation (Gemma's). */
  readonly geluApproximation: 'none' | 'tanh';
  readonly norm: NormKind;
  readonly normEps: number;
  /**
   * RMS norms scale by (normWeightOffset + weight) instead of weight, their weight starting at 0 (Gemma's
   * x·(1 + w): 1). 0 for the plain norm.
   */
  readonly normWeightOffset: number;
  /** The token embeddings are multiplied by this, rounded to the model's dtype (Gemma: sqrt(dim)); 1 for none. */
  readonly embeddingScale: number;
  /** 'pre': norm before each branch plus a final norm; 'post': norm after each residual sum. */
  readonly normPosition: 'pre' | 'post';
  /** Learned per-feature residual scale (init 1) in every sub-layer. */
  readonly scaleResidual: boolean;
  /** Constant c multiplying the residual (DeepNorm: (2·depth)^0.25). */
  readonly residualConstant: number;
  /** 'deepnorm': xavier-normal with gain (8·depth)^-0.25 on value/output/feed-forward; 'default': PyTorch's. */
  readonly init: 'default' | 'deepnorm';
  /** Attention and feed-forward read the same normed input and add to one residual (pre-norm only). */
  readonly parallelBlocks: boolean;
  /** Logits use the embedding table (no separate head, no logits bias). */
  readonly tiedEmbeddings: boolean;
  readonly shiftTokens: number;
  readonly qkNorm: boolean;
  readonly qkNormScale: number;
  readonly qkNormDimScale: boolean;
  /**
   * Qwen3's qk-norm: RMSNorm (eps normEps, a learned weight of headDim shared by the heads) over each head of
   * q and of k, before rotary; the attention scale stays headDim^-0.5. Unlike qkNorm (L2-normalised q and k
   * with a fixed scale qkNormScale, x-transformers'), the magnitude is learned. The two exclude each other.
   */
  readonly qkRmsNorm: boolean;
  /**
   * Sliding-window attention: a query sees only itself and the W − 1 keys before it (Mistral's
   * sliding_window); null for none.
   */
  readonly slidingWindow: number | null;
  /** Which layers the sliding window applies to: 'all', or 'even' (layers 0, 2, 4, …: Gemma 2's alternation). */
  readonly slidingWindowLayers: 'all' | 'even';
  /**
   * Multiplies q·k in place of headDim^-0.5 (Gemma 2's query_pre_attn_scalar^-0.5); null for headDim^-0.5.
   * Not used with qkNorm, whose scale is qkNormScale.
   */
  readonly attentionScale: number | null;
  /**
   * Attention logit soft-capping: scores become cap · tanh(scores / cap) before the masks and the softmax
   * (Gemma 2's attn_logit_softcapping); null for none. Only the reference attention composition applies it.
   */
  readonly attentionSoftCap: number | null;
  /** Final logit soft-capping: logits become cap · tanh(logits / cap) (Gemma 2's final_logit_softcapping). */
  readonly logitSoftCap: number | null;
  /**
   * Pre-norm blocks also norm each branch's output before its residual add (Gemma 2's four norms per layer:
   * x = x + norm₃(attn(norm₁(x))) ; x = x + norm₄(ff(norm₂(x)))).
   */
  readonly sandwichNorm: boolean;
  /** The first `alibiHeads` heads get ALiBi; 0 for none. */
  readonly alibiHeads: number;
  readonly rotary: RotaryConfig | null;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export type AndromedaConfigInput = Partial<Omit<AndromedaConfig, 'rotary'>> & {
  readonly vocabSize: number;
  readonly dim: number;
  readonly depth: number;
  readonly heads: number;
  /** Shorthand: post-norm, learned residual scale, c = (2·depth)^0.25 and DeepNorm init. */
  readonly deepnorm?: boolean;
  /** null or false: no rotary; true: defaults; an object: those settings over the defaults. */
  readonly rotary?:
    | (Partial<Omit<RotaryConfig, 'yarn' | 'llama3' | 'dynamicNtk' | 'longRope'>> & {
        readonly yarn?: Partial<YarnConfig> | null;
        readonly llama3?: Partial<Llama3ScalingConfig> | null;
        readonly dynamicNtk?: Partial<DynamicNtkConfig> | null;
        readonly longRope?: LongRopeConfig | null;
      })
    | boolean
    | null;
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const TOP_LEVEL_KEYS = new Set([
  'vocabSize',
  'dim',
  'depth',
  'heads',
  'headDim',
  'kvHeads',
  'maxSeqLen',
  'ffMult',
  'ffInnerDim',
  'feedForwardBias',
  'qkvBias',
  'attentionOutputBias',
  'ffActivation',
  'geluApproximation',
  'norm',
  'normEps',
  'normWeightOffset',
  'embeddingScale',
  'normPosition',
  'scaleResidual',
  'residualConstant',
  'init',
  'parallelBlocks',
  'tiedEmbeddings',
  'shiftTokens',
  'qkNorm',
  'qkNormScale',
  'qkNormDimScale',
  'qkRmsNorm',
  'slidingWindow',
  'slidingWindowLayers',
  'attentionScale',
  'attentionSoftCap',
  'logitSoftCap',
  'sandwichNorm',
  'alibiHeads',
  'rotary',
  'deepnorm',
]);
const ROTARY_KEYS = new Set([
  'dim',
  'base',
  'xpos',
  'xposScaleBase',
  'interpolationFactor',
  'ntkBaseRescale',
  'yarn',
  'llama3',
  'dynamicNtk',
  'longRope',
]);
const YARN_KEYS = new Set(['factor', 'originalMaxSeqLen', 'betaFast', 'betaSlow', 'attentionFactor']);
const LLAMA3_KEYS = new Set(['factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxSeqLen']);
const DYNAMIC_NTK_KEYS = new Set(['factor', 'originalMaxSeqLen']);
const LONG_ROPE_KEYS = new Set(['shortFactors', 'longFactors', 'originalMaxSeqLen', 'attentionFactor']);

export const DEFAULT_HEAD_DIM = 64;

/**
 * Bounds that hold before any memory is planned. Token ids and positions are int32 on every engine; a
 * layer is a few dozen JavaScript objects, so a depth beyond this would exhaust the JavaScript heap
 * long before its (possibly tiny) weights filled memory.
 */
export const MAX_VOCAB_SIZE = 2 ** 31 - 1;
export const MAX_SEQ_LEN = 2 ** 31 - 1;
export const MAX_DEPTH = 10_000;

/** Fills defaults and validates; throws a ConfigError listing every problem. */
export function resolveConfig(input: AndromedaConfigInput): AndromedaConfig {
  const problems: string[] = [];
  if (input === null || typeof input !== 'object') throw new ConfigError('model config: expected an object');
  for (const key of Object.keys(input)) if (!TOP_LEVEL_KEYS.has(key)) problems.push(`unknown setting '${key}'`);

  const deepnorm = input.deepnorm ?? false;
  if (deepnorm) {
    if (input.normPosition === 'pre')
      problems.push("deepnorm is a post-norm scheme: it cannot be combined with normPosition 'pre'");
    if (input.scaleResidual === false) problems.push('deepnorm learns a residual scale: scaleResidual cannot be false');
    if (input.residualConstant !== undefined)
      problems.push('deepnorm sets residualConstant to (2·depth)^0.25: do not give both');
    if (input.init === 'default') problems.push("deepnorm uses its own init: init cannot be 'default'");
  }
  const depth = input.depth;
  const config: Mutable<AndromedaConfig> = {
    vocabSize: input.vocabSize,
    dim: input.dim,
    depth,
    heads: input.heads,
    headDim: input.headDim ?? DEFAULT_HEAD_DIM,
    kvHeads: input.kvHeads ?? input.heads,
    maxSeqLen: input.maxSeqLen ?? 8192,
    ffMult: input.ffMult ?? 4,
    ffInnerDim: input.ffInnerDim ?? null,
    feedForwardBias: input.feedForwardBias ?? true,
    qkvBias: input.qkvBias ?? false,
    attentionOutputBias: input.attentionOutputBias ?? false,
    ffActivation: input.ffActivation ?? 'gelu',
    geluApproximation: input.geluApproximation ?? 'none',
    norm: input.norm ?? 'layernorm',
    normEps: input.normEps ?? (input.norm === 'rmsnorm' ? 1e-6 : 1e-5),
    normWeightOffset: input.normWeightOffset ?? 0,
    embeddingScale: input.embeddingScale ?? 1,
    normPosition: input.normPosition ?? (deepnorm ? 'post' : 'pre'),
    scaleResidual: input.scaleResidual ?? deepnorm,
    residualConstant: input.residualConstant ?? (deepnorm ? (2 * depth) ** 0.25 : 1),
    init: input.init ?? (deepnorm ? 'deepnorm' : 'default'),
    parallelBlocks: input.parallelBlocks ?? false,
    tiedEmbeddings: input.tiedEmbeddings ?? false,
    shiftTokens: input.shiftTokens ?? 0,
    qkNorm: input.qkNorm ?? false,
    qkNormScale: input.qkNormScale ?? 10,
    qkNormDimScale: input.qkNormDimScale ?? false,
    qkRmsNorm: input.qkRmsNorm ?? false,
    slidingWindow: input.slidingWindow ?? null,
    slidingWindowLayers: input.slidingWindowLayers ?? 'all',
    attentionScale: input.attentionScale ?? null,
    attentionSoftCap: input.attentionSoftCap ?? null,
    logitSoftCap: input.logitSoftCap ?? null,
    sandwichNorm: input.sandwichNorm ?? false,
    alibiHeads: input.alibiHeads ?? 0,
    rotary: null,
  };
  config.rotary = resolveRotary(input.rotary, config.headDim, problems);
  validate(config, problems);
  if (problems.length) throw new ConfigError(`invalid model config:\n  - ${problems.join('\n  - ')}`);
  return config;
}

function resolveRotary(
  input: AndromedaConfigInput['rotary'],
  headDim: number,
  problems: string[],
): RotaryConfig | null {
  if (input === undefined || input === null || input === false) return null;
  const given = input === true ? {} : input;
  if (typeof given !== 'object') {
    problems.push(`rotary must be true, false, null or an object, got ${JSON.stringify(input)}`);
    return null;
  }
  for (const key of Object.keys(given)) if (!ROTARY_KEYS.has(key)) problems.push(`unknown rotary setting '${key}'`);
  let yarn: YarnConfig | null = null;
  if (given.yarn) {
    for (const key of Object.keys(given.yarn))
      if (!YARN_KEYS.has(key)) problems.push(`unknown rotary.yarn setting '${key}'`);
    const factor = given.yarn.factor ?? 1;
    yarn = {
      factor,
      originalMaxSeqLen: given.yarn.originalMaxSeqLen ?? 8192,
      betaFast: given.yarn.betaFast ?? 32,
      betaSlow: given.yarn.betaSlow ?? 1,
      attentionFactor: given.yarn.attentionFactor ?? (factor > 1 ? 0.1 * Math.log(factor) + 1 : 1),
    };
  }
  let llama3: Llama3ScalingConfig | null = null;
  if (given.llama3) {
    for (const key of Object.keys(given.llama3))
      if (!LLAMA3_KEYS.has(key)) problems.push(`unknown rotary.llama3 setting '${key}'`);
    llama3 = {
      factor: given.llama3.factor ?? 8,
      lowFreqFactor: given.llama3.lowFreqFactor ?? 1,
      highFreqFactor: given.llama3.highFreqFactor ?? 4,
      originalMaxSeqLen: given.llama3.originalMaxSeqLen ?? 8192,
    };
  }
  let dynamicNtk: DynamicNtkConfig | null = null;
  if (given.dynamicNtk) {
    for (const key of Object.keys(given.dynamicNtk))
      if (!DYNAMIC_NTK_KEYS.has(key)) problems.push(`unknown rotary.dynamicNtk setting '${key}'`);
    dynamicNtk = {
      factor: given.dynamicNtk.factor ?? 1,
      originalMaxSeqLen: given.dynamicNtk.originalMaxSeqLen ?? 8192,
    };
  }
  let longRope: LongRopeConfig | null = null;
  if (given.longRope) {
    for (const key of Object.keys(given.longRope))
      if (!LONG_ROPE_KEYS.has(key)) problems.push(`unknown rotary.longRope setting '${key}'`);
    longRope = { ...given.longRope };
  }
  return {
    dim: given.dim ?? Math.max(Math.floor(headDim / 2), 32),
    base: given.base ?? 10000,
    xpos: given.xpos ?? false,
    xposScaleBase: given.xposScaleBase ?? 512,
    interpolationFactor: given.interpolationFactor ?? 1,
    ntkBaseRescale: given.ntkBaseRescale ?? 1,
    yarn,
    llama3,
    dynamicNtk,
    longRope,
  };
}

const isPositiveInteger = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isPositive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

function validate(c: AndromedaConfig, problems: string[]): void {
  for (const key of ['vocabSize', 'dim', 'depth', 'heads', 'headDim', 'kvHeads', 'maxSeqLen'] as const) {
    if (!isPositiveInteger(c[key])) problems.push(`${key} must be a positive integer, got ${JSON.stringify(c[key])}`);
  }
  if (c.vocabSize > MAX_VOCAB_SIZE)
    problems.push(`vocabSize ${c.vocabSize} is more than int32 token ids can address (${MAX_VOCAB_SIZE})`);
  if (c.maxSeqLen > MAX_SEQ_LEN)
    problems.push(`maxSeqLen ${c.maxSeqLen} is more than int32 positions can address (${MAX_SEQ_LEN})`);
  if (c.depth > MAX_DEPTH) problems.push(`depth ${c.depth} is more than the ${MAX_DEPTH} layers a model can have`);
  if (isPositiveInteger(c.heads) && isPositiveInteger(c.kvHeads)) {
    if (c.kvHeads > c.heads) problems.push(`kvHeads (${c.kvHeads}) cannot exceed heads (${c.heads})`);
    else if (c.heads % c.kvHeads !== 0) {
      problems.push(
        `heads (${c.heads}) must be a multiple of kvHeads (${c.kvHeads}): each key/value head serves the same ` +
          `number of query heads`,
      );
    }
  }
  if (c.ffInnerDim !== null) {
    if (!isPositiveInteger(c.ffInnerDim))
      problems.push(`ffInnerDim must be a positive integer (or null), got ${JSON.stringify(c.ffInnerDim)}`);
  } else if (!isPositive(c.ffMult) || !(Math.floor(c.dim * c.ffMult) > 0))
    problems.push(`ffMult must be positive (the inner width floor(dim·ffMult) must be ≥ 1), got ${c.ffMult}`);
  for (const key of ['feedForwardBias', 'qkvBias', 'attentionOutputBias', 'qkRmsNorm'] as const)
    if (typeof c[key] !== 'boolean') problems.push(`${key} must be true or false, got ${JSON.stringify(c[key])}`);
  if (c.qkRmsNorm && c.qkNorm)
    problems.push('qkRmsNorm (learned RMS norm per head) and qkNorm (L2 norm with a fixed scale) exclude each other');
  if (c.slidingWindow !== null && !isPositiveInteger(c.slidingWindow))
    problems.push(`slidingWindow must be a positive integer (or null), got ${JSON.stringify(c.slidingWindow)}`);
  if (c.slidingWindowLayers !== 'all' && c.slidingWindowLayers !== 'even')
    problems.push(`slidingWindowLayers must be 'all' or 'even', got ${JSON.stringify(c.slidingWindowLayers)}`);
  for (const key of ['attentionScale', 'attentionSoftCap', 'logitSoftCap'] as const)
    if (c[key] !== null && !isPositive(c[key]))
      problems.push(`${key} must be a positive number (or null), got ${JSON.stringify(c[key])}`);
  if (c.attentionScale !== null && c.qkNorm)
    problems.push('attentionScale replaces headDim^-0.5; with qkNorm the scale is qkNormScale: give one');
  if (typeof c.sandwichNorm !== 'boolean')
    problems.push(`sandwichNorm must be true or false, got ${JSON.stringify(c.sandwichNorm)}`);
  else if (c.sandwichNorm && (c.normPosition !== 'pre' || c.parallelBlocks))
    problems.push(
      "sandwichNorm norms the branch outputs of sequential pre-norm blocks: it needs normPosition 'pre' and no " +
        'parallelBlocks',
    );
  if (!['gelu', 'swiglu', 'geglu'].includes(c.ffActivation))
    problems.push(`ffActivation must be 'gelu', 'swiglu' or 'geglu', got '${c.ffActivation}'`);
  if (c.geluApproximation !== 'none' && c.geluApproximation !== 'tanh')
    problems.push(`geluApproximation must be 'none' or 'tanh', got '${c.geluApproximation}'`);
  if (!['layernorm', 'rmsnorm'].includes(c.norm))
    problems.push(`norm must be 'layernorm' or 'rmsnorm', got '${c.norm}'`);
  if (!isPositive(c.normEps)) problems.push(`normEps must be positive, got ${c.normEps}`);
  if (typeof c.normWeightOffset !== 'number' || !Number.isFinite(c.normWeightOffset))
    problems.push(`normWeightOffset must be a finite number, got ${JSON.stringify(c.normWeightOffset)}`);
  else if (c.normWeightOffset !== 0 && c.norm !== 'rmsnorm')
    problems.push(`normWeightOffset ${c.normWeightOffset} applies to RMS norms only, but norm is '${c.norm}'`);
  if (!isPositive(c.embeddingScale)) problems.push(`embeddingScale must be positive, got ${c.embeddingScale}`);
  if (c.normPosition !== 'pre' && c.normPosition !== 'post')
    problems.push(`normPosition must be 'pre' or 'post', got '${c.normPosition}'`);
  if (!isPositive(c.residualConstant)) problems.push(`residualConstant must be positive, got ${c.residualConstant}`);
  if (c.init !== 'default' && c.init !== 'deepnorm')
    problems.push(`init must be 'default' or 'deepnorm', got '${c.init}'`);
  if (c.parallelBlocks && c.normPosition !== 'pre')
    problems.push(
      'parallelBlocks needs pre-norm (one shared norm feeds both branches); post-norm/DeepNorm stacks are sequential',
    );
  if (!Number.isInteger(c.shiftTokens) || c.shiftTokens < 0)
    problems.push(`shiftTokens must be a non-negative integer, got ${c.shiftTokens}`);
  else if (c.shiftTokens > 0 && Math.floor(c.dim / (c.shiftTokens + 1)) < 1) {
    problems.push(`shiftTokens ${c.shiftTokens} splits dim ${c.dim} into ${c.shiftTokens + 1} chunks of zero features`);
  }
  if (c.qkNormDimScale && !c.qkNorm) problems.push('qkNormDimScale scales the normalised q and k: it needs qkNorm');
  if (c.qkNorm && !isPositive(c.qkNormScale)) problems.push(`qkNormScale must be positive, got ${c.qkNormScale}`);
  if (c.qkNormDimScale && c.kvHeads > 1 && c.kvHeads < c.heads) {
    problems.push(
      `qkNormDimScale with ${c.kvHeads} KV heads for ${c.heads} heads: the learned key scale is per query head, ` +
        'which makes the key per-head; that is expressible with one KV head or one per head, not with grouped-query ' +
        'attention (x-transformers 1.20 cannot broadcast it either)',
    );
  }
  if (!Number.isInteger(c.alibiHeads) || c.alibiHeads < 0 || c.alibiHeads > c.heads) {
    problems.push(`alibiHeads must be an integer from 0 to heads (${c.heads}), got ${c.alibiHeads}`);
  }
  const r = c.rotary;
  if (!r) return;
  if (!isPositiveInteger(r.dim) || r.dim % 2 !== 0)
    problems.push(`rotary dim must be a positive even integer, got ${r.dim}`);
  else if (r.dim > c.headDim) {
    problems.push(
      `rotary dim ${r.dim} is larger than the head dim ${c.headDim} (the default is max(headDim/2, 32); set ` +
        `rotary.dim ≤ headDim)`,
    );
  }
  if (!isPositive(r.base)) problems.push(`rotary base must be positive, got ${r.base}`);
  if (r.xpos && !isPositive(r.xposScaleBase))
    problems.push(`rotary xposScaleBase must be positive, got ${r.xposScaleBase}`);
  if (!(r.interpolationFactor >= 1))
    problems.push(`rotary interpolationFactor must be ≥ 1, got ${r.interpolationFactor}`);
  if (!isPositive(r.ntkBaseRescale)) problems.push(`rotary ntkBaseRescale must be positive, got ${r.ntkBaseRescale}`);
  if (r.ntkBaseRescale !== 1 && r.dim <= 2) problems.push('rotary ntkBaseRescale needs a rotary dim above 2');
  if (r.yarn) {
    const y = r.yarn;
    if (!(y.factor >= 1)) problems.push(`rotary yarn factor must be ≥ 1, got ${y.factor}`);
    if (!isPositiveInteger(y.originalMaxSeqLen))
      problems.push(`rotary yarn originalMaxSeqLen must be a positive integer, got ${y.originalMaxSeqLen}`);
    if (!isPositive(y.betaFast) || !isPositive(y.betaSlow) || y.betaFast <= y.betaSlow) {
      problems.push(`rotary yarn needs betaFast > betaSlow > 0, got ${y.betaFast} and ${y.betaSlow}`);
    }
    if (!isPositive(y.attentionFactor))
      problems.push(`rotary yarn attentionFactor must be positive, got ${y.attentionFactor}`);
    if (r.interpolationFactor !== 1)
      problems.push('rotary: use either interpolationFactor or yarn (YaRN interpolates by itself)');
  }
  if (r.llama3) {
    const l = r.llama3;
    if (!(l.factor >= 1)) problems.push(`rotary llama3 factor must be ≥ 1, got ${l.factor}`);
    if (!isPositive(l.lowFreqFactor) || !isPositive(l.highFreqFactor) || l.highFreqFactor <= l.lowFreqFactor)
      problems.push(
        `rotary llama3 needs highFreqFactor > lowFreqFactor > 0, got ${l.highFreqFactor} and ${l.lowFreqFactor}`,
      );
    if (!isPositiveInteger(l.originalMaxSeqLen))
      problems.push(`rotary llama3 originalMaxSeqLen must be a positive integer, got ${l.originalMaxSeqLen}`);
  }
  if (r.dynamicNtk) {
    const d = r.dynamicNtk;
    if (!(d.factor >= 1)) problems.push(`rotary dynamicNtk factor must be ≥ 1, got ${d.factor}`);
    if (!isPositiveInteger(d.originalMaxSeqLen))
      problems.push(`rotary dynamicNtk originalMaxSeqLen must be a positive integer, got ${d.originalMaxSeqLen}`);
    if (r.dim <= 2) problems.push('rotary dynamicNtk needs a rotary dim above 2');
  }
  if (r.longRope) validateLongRope(r.longRope, r.dim, problems);
  const scalings = [
    r.interpolationFactor !== 1 && 'interpolationFactor',
    r.yarn && 'yarn',
    r.llama3 && 'llama3',
    r.dynamicNtk && 'dynamicNtk',
    r.longRope && 'longRope',
  ].filter(Boolean);
  if (scalings.length > 1 && !(scalings.length === 2 && r.yarn && r.interpolationFactor !== 1))
    problems.push(`rotary: give one frequency scaling, not ${scalings.join(' and ')}`);
}

function validateLongRope(l: LongRopeConfig, rotaryDim: number, problems: string[]): void {
  for (const key of ['shortFactors', 'longFactors'] as const) {
    const factors = l[key];
    if (!Array.isArray(factors) || factors.length !== rotaryDim / 2 || !factors.every(isPositive))
      problems.push(
        `rotary longRope ${key} must be ${rotaryDim / 2} positive numbers (one per rotated frequency), got ` +
          JSON.stringify(factors),
      );
  }
  if (!isPositiveInteger(l.originalMaxSeqLen))
    problems.push(`rotary longRope originalMaxSeqLen must be a positive integer, got ${l.originalMaxSeqLen}`);
  if (!isPositive(l.attentionFactor))
    problems.push(`rotary longRope attentionFactor must be positive, got ${l.attentionFactor}`);
}

/**
 * Number of parameters of a model with this config (matches parameterShapes in parameter-shapes.ts, which
 * the model tests check against the parameters a model creates), computed without listing them.
 */
export function parameterCountOf(c: AndromedaConfig): number {
  const normParams = c.norm === 'layernorm' ? 2 * c.dim : c.dim;
  const inner = feedForwardInnerDim(c);
  const ffIn = c.ffActivation === 'gelu' ? inner : 2 * inner;
  const ffBias = c.feedForwardBias ? 1 : 0;
  const block =
    (c.parallelBlocks ? normParams : c.sandwichNorm ? 4 * normParams : 2 * normParams) +
    (2 * c.heads + 2 * c.kvHeads) * c.headDim * c.dim +
    (c.qkvBias ? (c.heads + 2 * c.kvHeads) * c.headDim : 0) +
    (c.attentionOutputBias ? c.dim : 0) +
    (c.qkNormDimScale ? 2 * c.heads * c.headDim : 0) +
    (c.qkRmsNorm ? 2 * c.headDim : 0) +
    (c.scaleResidual ? (c.parallelBlocks ? c.dim : 2 * c.dim) : 0) +
    ffIn * (c.dim + ffBias) +
    c.dim * (inner + ffBias);
  return (
    c.vocabSize * c.dim +
    c.depth * block +
    (c.normPosition === 'pre' ? normParams : 0) +
    (c.tiedEmbeddings ? 0 : c.vocabSize * (c.dim + 1))
  );
}

/**
 * Throws when the weights of a model with this config, at `bytesPerParameter`, exceed this machine's
 * memory: such a model can never be created or loaded here, and building it layer by layer would end
 * in an out-of-memory kill instead of an error. Called before the first parameter is allocated.
 */
export function assertModelFitsMemory(c: AndromedaConfig, bytesPerParameter: number): void {
  const count = parameterCountOf(c);
  const bytes = count * bytesPerParameter;
  if (!Number.isSafeInteger(count) || bytes > totalmem()) {
    throw new ConfigError(
      `invalid model config: its ${count.toExponential(2)} parameters ` +
        `take ${(bytes / 2 ** 30).toFixed(1)} GiB at ${bytesPerParameter} bytes each, more than this ` +
        `machine's ${(totalmem() / 2 ** 30).toFixed(1)} GiB of memory`,
    );
  }
}

/** The sliding window of layer `layer` (null: it attends to every earlier key). */
export function layerWindow(c: AndromedaConfig, layer: number): number | null {
  if (c.slidingWindowLayers === 'even' && layer % 2 !== 0) return null;
  return c.slidingWindow;
}

/** Width of the feed-forward hidden layer. */
export function feedForwardInnerDim(c: AndromedaConfig): number {
  return c.ffInnerDim ?? Math.floor(c.dim * c.ffMult);
}
