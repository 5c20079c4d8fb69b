/**
 * Import of x-transformers 1.20 checkpoints (`TransformerWrapper(attn_layers = Decoder(...))`, the
 * form Andromeda's Python code trains): their argument names map to our config and their state-dict
 * names to our parameters. The name map is kept with the converted checkpoint so gradients and
 * outputs can be reported under the original names.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DTYPE_BYTES, type DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { noGrad } from '../autograd/grad-mode.js';
import { SafetensorsReader } from '../io/safetensors.js';
import {
  ConfigError,
  assertModelFitsMemory,
  resolveConfig,
  type AndromedaConfig,
  type AndromedaConfigInput,
} from './config.js';
import { parameterShapes } from './parameter-shapes.js';
import { ntkBase, plainInverseFrequencies, xposZeta } from './rotary.js';
import { Andromeda } from './andromeda.js';
import { JSON_FILE_LIMIT, readBoundedText } from '../io/bounded-read.js';

export const XTRANSFORMERS_FORMAT = 'x-transformers-1.20';

/** config.json of an x-transformers checkpoint: the wrapper's and the decoder's keyword arguments. */
export interface XTransformersConfigFile {
  readonly x_transformers_version?: string;
  readonly wrapper: Readonly<Record<string, unknown>>;
  readonly decoder: Readonly<Record<string, unknown>>;
}

/** One parameter: our name, and its name and shape in the original checkpoint. */
export interface OriginalName {
  readonly name: string;
  readonly originalName: string;
  readonly originalShape: readonly number[];
}

/** Where a converted checkpoint came from (stored in its config.json). */
export interface CheckpointOrigin {
  readonly format: string;
  readonly parameters: readonly OriginalName[];
}

/** Arguments that only affect training randomness (dropout) or speed: accepted, noted when active. */
const TRAINING_ONLY: Record<string, unknown> = {
  attn_dropout: 0,
  ff_dropout: 0,
  layer_dropout: 0,
  cross_attn_tokens_dropout: 0,
  emb_dropout: 0,
  emb_frac_gradient: 1,
};
/** Accepted without effect on the function computed. */
const NEUTRAL = new Set([
  'attn_flash',
  'attn_onnxable',
  'pre_norm_has_final_norm',
  'zero_init_branch_output',
  'attn_zero_init_output',
  'ff_zero_init_output',
  'max_mem_len',
  'shift_mem_down',
  'attn_z_loss_weight',
  'max_seq_len',
]);
/** x-transformers features this model does not have: an error when set to anything but the default. */
const UNSUPPORTED: Record<string, unknown> = {
  cross_attend: false,
  only_cross: false,
  rel_pos_bias: false,
  dynamic_pos_bias: false,
  custom_layers: null,
  sandwich_coef: null,
  par_ratio: null,
  residual_attn: false,
  cross_residual_attn: false,
  macaron: false,
  gate_residual: false,
  sandwich_norm: false,
  resi_dual: false,
  use_scalenorm: false,
  use_simple_rmsnorm: false,
  attn_talking_heads: false,
  attn_head_scale: false,
  attn_sparse_topk: null,
  attn_num_mem_kv: 0,
  attn_on_attn: false,
  attn_gate_values: false,
  attn_max_attend_past: null,
  attn_shared_kv: false,
  attn_value_dim_head: null,
  attn_tensor_product: false,
  attn_cascading_heads: false,
  attn_add_zero_kv: false,
  attn_rotary_embed_values: false,
  attn_qk_norm_groups: 1,
  ff_relu_squared: false,
  ff_post_act_ln: false,
  ff_no_bias: false,
  ff_glu_mult_bias: false,
  ff_dim_out: null,
  post_emb_norm: false,
  num_memory_tokens: null,
  l2norm_embed: false,
  scaled_sinu_pos_emb: false,
  causal: true,
};
const DECODER_KEYS = new Set([
  'dim',
  'depth',
  'heads',
  'attn_dim_head',
  'alibi_pos_bias',
  'alibi_num_heads',
  'rotary_pos_emb',
  'rotary_xpos',
  'rotary_emb_dim',
  'rotary_xpos_scale_base',
  'rotary_interpolation_factor',
  'rotary_base_rescale_factor',
  'deepnorm',
  'pre_norm',
  'scale_residual',
  'scale_residual_constant',
  'shift_tokens',
  'attn_one_kv_head',
  'attn_kv_heads',
  'attn_qk_norm',
  'attn_qk_norm_dim_scale',
  'attn_qk_norm_scale',
  'use_rmsnorm',
  'ff_mult',
  'ff_glu',
  'ff_swish',
]);
const WRAPPER_KEYS = new Set([
  'num_tokens',
  'max_seq_len',
  'use_abs_pos_emb',
  'tie_embedding',
  'emb_dim',
  'logits_dim',
]);

/** Whether a value equals an argument's default (falsy values all count as the falsy defaults). */
const isDefault = (value: unknown, fallback: unknown): boolean => value === fallback || (!value && !fallback);

/** Maps x-transformers arguments to our config; unsupported features are errors, ignored arguments warnings. */
export function configFromXTransformers(
  file: XTransformersConfigFile,
  source = 'config.json',
): { input: AndromedaConfigInput; warnings: string[] } {
  const isObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (!isObject(file) || !isObject(file.wrapper) || !isObject(file.decoder)) {
    throw new ConfigError(
      `${source}: expected {"wrapper": {...TransformerWrapper arguments}, "decoder": {...Decoder arguments}}`,
    );
  }
  if (file.x_transformers_version && file.x_transformers_version !== '1.20.0') {
    throw new ConfigError(
      `${source}: x-transformers ${file.x_transformers_version} is not supported (the import follows 1.20.0 exactly)`,
    );
  }
  const w = file.wrapper,
    d = file.decoder;
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const [where, args, known] of [
    ['wrapper', w, WRAPPER_KEYS],
    ['decoder', d, DECODER_KEYS],
  ] as const) {
    for (const [key, value] of Object.entries(args)) {
      if (known.has(key) || NEUTRAL.has(key)) continue;
      if (key in TRAINING_ONLY) {
        if (value !== TRAINING_ONLY[key])
          warnings.push(
            `${where}.${key} = ${JSON.stringify(value)} only affects training; it is not part of the imported model`,
          );
      } else if (key in UNSUPPORTED) {
        if (!isDefault(value, UNSUPPORTED[key]))
          errors.push(`${where}.${key} = ${JSON.stringify(value)} is not supported`);
      } else warnings.push(`${where}.${key} is not an argument of x-transformers 1.20 (it ignores it, and so do we)`);
    }
  }
  const num = (args: Readonly<Record<string, unknown>>, key: string, fallback?: number): number => {
    const v = args[key] ?? fallback;
    if (typeof v !== 'number') {
      errors.push(`${key} must be a number, got ${JSON.stringify(v)}`);
      return NaN;
    }
    return v;
  };
  const flag = (key: string): boolean => d[key] === true;
  const dim = num(d, 'dim'),
    depth = num(d, 'depth'),
    heads = num(d, 'heads', 8),
    vocabSize = num(w, 'num_tokens');
  const headDim = num(d, 'attn_dim_head', 64);
  const rotaryOn = flag('rotary_pos_emb') || flag('rotary_xpos');
  if ((w.use_abs_pos_emb ?? true) && !rotaryOn)
    errors.push('an absolute position embedding (wrapper.use_abs_pos_emb without rotary) is not supported');
  if (w.emb_dim != null && w.emb_dim !== dim)
    errors.push(`wrapper.emb_dim ${w.emb_dim} differs from dim ${dim} (an embedding projection), not supported`);
  if (w.logits_dim != null && w.logits_dim !== vocabSize)
    errors.push(`wrapper.logits_dim ${w.logits_dim} differs from num_tokens, not supported`);
  if (typeof d.shift_tokens === 'object' && d.shift_tokens !== null)
    errors.push('decoder.shift_tokens per layer (a tuple) is not supported; give one integer');
  if (flag('attn_one_kv_head') && d.attn_kv_heads != null)
    errors.push('give attn_one_kv_head or attn_kv_heads, not both (x-transformers refuses it too)');
  if (flag('ff_swish') && !flag('ff_glu'))
    errors.push('decoder.ff_swish without ff_glu (a SiLU MLP) is not supported; SwiGLU is ff_glu + ff_swish');
  const deepnorm = flag('deepnorm');
  const alibiHeads = flag('alibi_pos_bias') ? num(d, 'alibi_num_heads', heads) : 0;
  const input: AndromedaConfigInput = {
    vocabSize,
    dim,
    depth,
    heads,
    headDim,
    kvHeads: flag('attn_one_kv_head') ? 1 : num(d, 'attn_kv_heads', heads),
    maxSeqLen: num(w, 'max_seq_len', 8192),
    ffMult: num(d, 'ff_mult', 4),
    ffActivation: flag('ff_glu') ? (flag('ff_swish') ? 'swiglu' : 'geglu') : 'gelu',
    // x-transformers' RMSNorm is F.normalize(x)·√dim·g: ours with a vanishing epsilon.
    norm: flag('use_rmsnorm') ? 'rmsnorm' : 'layernorm',
    normEps: flag('use_rmsnorm') ? 1e-24 : 1e-5,
    ...(deepnorm
      ? { deepnorm: true }
      : {
          normPosition: d.pre_norm === false ? 'post' : 'pre',
          scaleResidual: flag('scale_residual'),
          residualConstant: num(d, 'scale_residual_constant', 1),
        }),
    tiedEmbeddings: w.tie_embedding === true,
    shiftTokens: typeof d.shift_tokens === 'number' ? d.shift_tokens : 0,
    qkNorm: flag('attn_qk_norm'),
    qkNormScale: num(d, 'attn_qk_norm_scale', 10),
    qkNormDimScale: flag('attn_qk_norm') && flag('attn_qk_norm_dim_scale'),
    alibiHeads,
    rotary: rotaryOn
      ? {
          dim: Math.max(d.rotary_emb_dim == null ? Math.floor(headDim / 2) : num(d, 'rotary_emb_dim'), 32),
          xpos: flag('rotary_xpos'),
          xposScaleBase: num(d, 'rotary_xpos_scale_base', 512),
          interpolationFactor: num(d, 'rotary_interpolation_factor', 1),
          ntkBaseRescale: num(d, 'rotary_base_rescale_factor', 1),
        }
      : null,
  };
  if (deepnorm && d.scale_residual_constant != null && d.scale_residual_constant !== 1)
    errors.push('deepnorm overrides scale_residual_constant (x-transformers asserts it is 1)');
  if (errors.length)
    throw new ConfigError(`${source}: cannot import this x-transformers model:\n  - ${errors.join('\n  - ')}`);
  return { input, warnings };
}

/** Our parameter names with their x-transformers 1.20 names and shapes. */
export function xTransformersNames(c: AndromedaConfig): OriginalName[] {
  if (c.parallelBlocks)
    throw new Error('x-transformers 1.20 has no parallel blocks: this model has no x-transformers names');
  const ours = parameterShapes(c);
  const fn = c.shiftTokens > 0 ? 'fn.' : '';
  const normSlot = c.normPosition === 'pre' ? 0 : 2;
  const normNames = (ourPrefix: string, theirPrefix: string): [string, string][] =>
    c.norm === 'rmsnorm'
      ? [[`${ourPrefix}.weight`, `${theirPrefix}.g`]]
      : [
          [`${ourPrefix}.weight`, `${theirPrefix}.weight`],
          [`${ourPrefix}.bias`, `${theirPrefix}.bias`],
        ];
  const pairs: [string, string][] = [['embedding.weight', 'token_emb.emb.weight']];
  for (let i = 0; i < c.depth; i++) {
    const a = `attn_layers.layers.${2 * i}`,
      f = `attn_layers.layers.${2 * i + 1}`,
      ours = `blocks.${i}`;
    pairs.push(...normNames(`${ours}.attentionNorm`, `${a}.0.${normSlot}`));
    for (const [our, their] of [
      ['query', 'to_q'],
      ['key', 'to_k'],
      ['value', 'to_v'],
      ['output', 'to_out'],
    ]) {
      pairs.push([`${ours}.attention.${our}.weight`, `${a}.1.${fn}${their}.weight`]);
    }
    if (c.qkNormDimScale) {
      pairs.push(
        [`${ours}.attention.queryScale`, `${a}.1.${fn}qk_norm_q_scale`],
        [`${ours}.attention.keyScale`, `${a}.1.${fn}qk_norm_k_scale`],
      );
    }
    if (c.scaleResidual) pairs.push([`${ours}.attentionResidualScale`, `${a}.2.residual_scale`]);
    pairs.push(...normNames(`${ours}.feedForwardNorm`, `${f}.0.${normSlot}`));
    const projectIn = c.ffActivation === 'gelu' ? 'ff.0.0' : 'ff.0.proj';
    pairs.push(
      [`${ours}.feedForward.input.weight`, `${f}.1.${fn}${projectIn}.weight`],
      [`${ours}.feedForward.input.bias`, `${f}.1.${fn}${projectIn}.bias`],
    );
    pairs.push(
      [`${ours}.feedForward.output.weight`, `${f}.1.${fn}ff.2.weight`],
      [`${ours}.feedForward.output.bias`, `${f}.1.${fn}ff.2.bias`],
    );
    if (c.scaleResidual) pairs.push([`${ours}.feedForwardResidualScale`, `${f}.2.residual_scale`]);
  }
  if (c.normPosition === 'pre') pairs.push(...normNames('finalNorm', 'attn_layers.final_norm'));
  if (!c.tiedEmbeddings) pairs.push(['logits.weight', 'to_logits.weight'], ['logits.bias', 'to_logits.bias']);
  const mapped = new Set(pairs.map(([n]) => n));
  const unmapped = [...ours.keys()].filter((n) => !mapped.has(n));
  if (unmapped.length || mapped.size !== ours.size)
    throw new Error(`internal: x-transformers name map is incomplete (${unmapped.join(', ')})`);
  return pairs.map(([name, originalName]) => {
    const shape = ours.get(name)!;
    // qk-norm scales are [heads, 1, dim_head] there, [heads, dim_head] here.
    const originalShape = name.endsWith('queryScale') || name.endsWith('keyScale') ? [shape[0]!, 1, shape[1]!] : shape;
    return { name, originalName, originalShape };
  });
}

/** Buffers x-transformers saves that we compute from the config: checked, not loaded. */
function expectedBuffers(c: AndromedaConfig): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  if (!c.rotary) return out;
  const r = c.rotary;
  out.set(
    'attn_layers.rotary_pos_emb.inv_freq',
    plainInverseFrequencies(r.dim, ntkBase(r.base, r.ntkBaseRescale, r.dim)),
  );
  if (r.xpos) out.set('attn_layers.rotary_pos_emb.scale', xposZeta(r.dim));
  return out;
}

export function readXTransformersConfig(dir: string): XTransformersConfigFile {
  const path = join(dir, 'config.json');
  if (!existsSync(path))
    throw new Error(
      `${dir}: no config.json (expected the x-transformers arguments as {"wrapper": {...}, "decoder": {...}})`,
    );
  let text: string;
  try {
    text = readBoundedText(path, JSON_FILE_LIMIT);
  } catch (e) {
    throw new Error(`${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as XTransformersConfigFile;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export function findWeightsFile(dir: string): string {
  for (const name of ['weights.safetensors', 'model.safetensors']) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  throw new Error(
    `${dir}: no weights.safetensors (save the PyTorch state dict with ` +
      `safetensors.torch.save_file(model.state_dict(), 'weights.safetensors'))`,
  );
}

export interface ImportOptions {
  device?: string;
  dtype?: DType;
}

/**
 * Loads `<dir>/config.json` + `<dir>/weights.safetensors` written from an x-transformers 1.20 model.
 * Missing, unexpected and mis-shaped tensors are reported together; rotary buffers are checked
 * against the config.
 */
export function importXTransformers(
  dir: string,
  o: ImportOptions = {},
): { model: Andromeda; origin: CheckpointOrigin; warnings: string[] } {
  const { input, warnings } = configFromXTransformers(readXTransformersConfig(dir), join(dir, 'config.json'));
  const config = resolveConfig(input);
  assertModelFitsMemory(config, DTYPE_BYTES[o.dtype ?? 'float32']);
  const names = xTransformersNames(config);
  const weightsPath = findWeightsFile(dir);
  const reader = SafetensorsReader.open(weightsPath);
  try {
    const buffers = expectedBuffers(config);
    const known = new Set([...names.map((n) => n.originalName), ...buffers.keys()]);
    const missing = names.filter((n) => !reader.has(n.originalName)).map((n) => n.originalName);
    const unexpected = reader.names.filter((n) => !known.has(n));
    const misShaped = names
      .filter((n) => reader.has(n.originalName) && !shapesEqual(reader.entry(n.originalName).shape, n.originalShape))
      .map(
        (n) =>
          `${n.originalName}: config ` +
          `gives ${formatShape(n.originalShape)}, file has ${formatShape(reader.entry(n.originalName).shape)}`,
      );
    for (const [name, values] of buffers) {
      if (!reader.has(name)) continue;
      const stored = reader.readTensor(name);
      const got = stored.toArray();
      stored.dispose();
      const agrees =
        got.length === values.length && values.every((v, i) => Math.abs(got[i]! - v) <= 1e-6 * Math.abs(v));
      if (!agrees)
        misShaped.push(
          `${name}: holds [${[...got].slice(0, 4).join(', ')}, …], the config ` +
            `implies [${[...values].slice(0, 4).join(', ')}, …] (rotary settings differ)`,
        );
    }
    const problems: string[] = [];
    if (missing.length) problems.push(`missing (${missing.length}): ${missing.join(', ')}`);
    if (unexpected.length) problems.push(`unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
    if (misShaped.length) problems.push(`mismatched (${misShaped.length}): ${misShaped.join('; ')}`);
    if (problems.length)
      throw new Error(`${weightsPath}: the tensors do not match the model of config.json:\n  ${problems.join('\n  ')}`);
    const model = new Andromeda(config, { device: o.device, dtype: o.dtype, initialize: false });
    const params = new Map(model.namedParameters());
    try {
      noGrad(() => {
        for (const n of names) {
          const target = params.get(n.name)!;
          const source = reader.readTensor(n.originalName, target.device);
          const reshaped = source.reshape(target.shape);
          if (target.size > 0) target.engine.copy(reshaped.strided(), target.strided(), target.shape);
          reshaped.dispose();
          source.dispose();
        }
      });
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, origin: { format: XTRANSFORMERS_FORMAT, parameters: names }, warnings };
  } finally {
    reader.close();
  }
}
