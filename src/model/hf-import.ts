/**
 * Import of Hugging Face `transformers` causal-LM checkpoints: a folder with config.json and
 * model.safetensors (or shards listed by model.safetensors.index.json). `architectures[0]` picks the family
 * (./hf-families.ts maps its config onto our options); the tensors are renamed to our parameters and
 * converted (bf16/fp16/fp32/fp64 → the requested dtype) on the way in.
 *
 * Three layout differences are absorbed here. Our gated feed-forward projects to [value; gate] in one matrix,
 * so Llama's up_proj and gate_proj are stacked (up first). Phi-3 stores fused projections, split by rows:
 * qkv_proj is [q; k; v] and gate_up_proj [gate; up] (its MLP chunks gate first). Our grouped-query attention
 * gives query head a the key/value head a mod G, transformers' head h the key/value head ⌊h / R⌋ (R = heads / G),
 * so query heads are reordered (rows of q_proj, columns of o_proj): our head a is their head (a mod G)·R + ⌊a / G⌋.
 * Logit heads have no bias in these families; ours is set to zero.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import { DTYPE_BYTES, type DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { SafetensorsReader } from '../io/safetensors.js';
import { noGrad } from '../autograd/grad-mode.js';
import {
  ConfigError,
  assertModelFitsMemory,
  feedForwardInnerDim,
  resolveConfig,
  type AndromedaConfig,
} from './config.js';
import { parameterShapes } from './parameter-shapes.js';
import { Andromeda } from './andromeda.js';
import { configFromHuggingFace, type HuggingFaceConfigFile } from './hf-families.js';
import type { CheckpointOrigin, OriginalName } from './xtransformers-import.js';
import { readJsonFile } from '../io/bounded-read.js';

export { HF_ARCHITECTURES, configFromHuggingFace, type HuggingFaceConfigFile } from './hf-families.js';

export const HF_FORMAT = 'huggingface-transformers';

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

/** Whether `dir` looks like a transformers checkpoint: config.json naming architectures, and safetensors. */
export function isHuggingFaceCheckpoint(dir: string): boolean {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) return false;
  if (!existsSync(join(dir, SINGLE_FILE)) && !existsSync(join(dir, INDEX_FILE))) return false;
  try {
    const file = readJsonFile(configPath) as Record<string, unknown>;
    return Array.isArray(file.architectures) || typeof file.model_type === 'string';
  } catch {
    return false;
  }
}

export function readHuggingFaceConfig(dir: string): HuggingFaceConfigFile {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir}: no config.json (a transformers checkpoint folder has one)`);
  let parsed: unknown;
  try {
    parsed = readJsonFile(path);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new ConfigError(`${path}: expected a JSON object`);
  return parsed as HuggingFaceConfigFile;
}

/** A checkpoint tensor, or a block of its rows (of `of` rows in all) where the checkpoint fuses projections. */
interface TensorPart {
  readonly tensor: string;
  readonly rows?: { readonly start: number; readonly count: number; readonly of: number };
}

const whole = (tensor: string): TensorPart => ({ tensor });

/** One of our parameters and how it is made from the checkpoint's tensors. */
interface WeightSource {
  readonly name: string;
  /** The checkpoint tensors (or their rows), concatenated along the rows in this order ([] for a zero bias). */
  readonly parts: readonly TensorPart[];
  /** Reorder heads: the rows of q_proj (weight or bias), or the columns of o_proj. */
  readonly heads?: 'rows' | 'columns';
  /** Multiply the rotated rows of every head by this (see HuggingFaceModelConfig.rotatedQueryKeyScale). */
  readonly rotatedRowsScale?: number;
}

/** Where each of our parameters comes from, for the config's family. */
function weightSources(
  c: AndromedaConfig,
  architecture: string,
  tied: boolean,
  rotatedQueryKeyScale: number,
): WeightSource[] {
  const ours = parameterShapes(c);
  const fused = architecture === 'Phi3ForCausalLM';
  const sources: WeightSource[] = [{ name: 'embedding.weight', parts: [whole('model.embed_tokens.weight')] }];
  const norm = (our: string, their: string): void => {
    for (const kind of ['weight', 'bias']) {
      if (ours.has(`${our}.${kind}`)) sources.push({ name: `${our}.${kind}`, parts: [whole(`${their}.${kind}`)] });
    }
  };
  const [queryRows, kvRows, inner] = [c.heads * c.headDim, c.kvHeads * c.headDim, feedForwardInnerDim(c)];
  const qkvRows = queryRows + 2 * kvRows;
  // Phi-3's fused q|k|v rows; the bias (none in Phi-3) would be split the same way.
  const fusedAttention: Record<string, (kind: string) => TensorPart> = {
    query: (kind) => ({ tensor: `qkv_proj.${kind}`, rows: { start: 0, count: queryRows, of: qkvRows } }),
    key: (kind) => ({ tensor: `qkv_proj.${kind}`, rows: { start: queryRows, count: kvRows, of: qkvRows } }),
    value: (kind) => ({
      tensor: `qkv_proj.${kind}`,
      rows: { start: queryRows + kvRows, count: kvRows, of: qkvRows },
    }),
  };
  for (let i = 0; i < c.depth; i++) {
    const ourBlock = `blocks.${i}`;
    const theirs = `model.layers.${i}`;
    norm(c.parallelBlocks ? `${ourBlock}.norm` : `${ourBlock}.attentionNorm`, `${theirs}.input_layernorm`);
    if (c.sandwichNorm) {
      // Gemma 2: post_attention_layernorm norms the attention's output; the feed-forward has its own pre-norm.
      norm(`${ourBlock}.attentionOutputNorm`, `${theirs}.post_attention_layernorm`);
      norm(`${ourBlock}.feedForwardNorm`, `${theirs}.pre_feedforward_layernorm`);
      norm(`${ourBlock}.feedForwardOutputNorm`, `${theirs}.post_feedforward_layernorm`);
    } else if (!c.parallelBlocks) norm(`${ourBlock}.feedForwardNorm`, `${theirs}.post_attention_layernorm`);
    const attention = `${ourBlock}.attention`;
    for (const [our, their] of [
      ['query', 'q_proj'],
      ['key', 'k_proj'],
      ['value', 'v_proj'],
      ['output', 'o_proj'],
    ] as const) {
      for (const kind of ['weight', 'bias'] as const) {
        const name = `${attention}.${our}.${kind}`;
        if (!ours.has(name)) continue;
        const heads = our === 'query' ? 'rows' : our === 'output' && kind === 'weight' ? 'columns' : undefined;
        const split = fused ? fusedAttention[our] : undefined;
        const part = split ? split(kind) : whole(`${their}.${kind}`);
        const rotated = (our === 'query' || our === 'key') && rotatedQueryKeyScale !== 1;
        sources.push({
          name,
          parts: [{ ...part, tensor: `${theirs}.self_attn.${part.tensor}` }],
          heads,
          ...(rotated ? { rotatedRowsScale: rotatedQueryKeyScale } : {}),
        });
      }
    }
    if (c.qkRmsNorm) {
      sources.push({ name: `${attention}.queryNorm.weight`, parts: [whole(`${theirs}.self_attn.q_norm.weight`)] });
      sources.push({ name: `${attention}.keyNorm.weight`, parts: [whole(`${theirs}.self_attn.k_norm.weight`)] });
    }
    const mlp = `${theirs}.mlp`;
    for (const kind of ['weight', 'bias']) {
      const input = `${ourBlock}.feedForward.input.${kind}`;
      if (ours.has(input)) {
        const gateUp = `${mlp}.gate_up_proj.${kind}`;
        sources.push({
          name: input,
          parts: fused
            ? [
                { tensor: gateUp, rows: { start: inner, count: inner, of: 2 * inner } },
                { tensor: gateUp, rows: { start: 0, count: inner, of: 2 * inner } },
              ]
            : [whole(`${mlp}.up_proj.${kind}`), whole(`${mlp}.gate_proj.${kind}`)],
        });
      }
      const output = `${ourBlock}.feedForward.output.${kind}`;
      if (ours.has(output)) sources.push({ name: output, parts: [whole(`${mlp}.down_proj.${kind}`)] });
    }
  }
  norm('finalNorm', 'model.norm');
  if (!tied) {
    sources.push({ name: 'logits.weight', parts: [whole('lm_head.weight')] });
    sources.push({ name: 'logits.bias', parts: [] });
  }
  const covered = new Set(sources.map((s) => s.name));
  const uncovered = [...ours.keys()].filter((n) => !covered.has(n));
  if (uncovered.length || covered.size !== ours.size)
    throw new Error(`internal: the ${architecture} name map misses ${uncovered.join(', ')}`);
  return sources;
}

/** The open safetensors file(s) of a checkpoint folder and which file holds which tensor. */
class CheckpointFiles {
  private readonly readers = new Map<string, SafetensorsReader>();
  private readonly fileOf = new Map<string, string>();

  constructor(readonly dir: string) {
    const indexPath = join(dir, INDEX_FILE);
    if (existsSync(join(dir, SINGLE_FILE))) {
      this.open(join(dir, SINGLE_FILE));
    } else if (existsSync(indexPath)) {
      let index: { weight_map?: Record<string, unknown> };
      try {
        index = readJsonFile(indexPath) as typeof index;
      } catch (e) {
        throw new Error(`${indexPath}: not valid JSON (${(e as Error).message})`);
      }
      const map = index.weight_map;
      if (!map || typeof map !== 'object')
        throw new Error(`${indexPath}: no "weight_map" object (tensor name → shard file)`);
      try {
        for (const [name, file] of Object.entries(map)) {
          if (typeof file !== 'string' || file.includes('/') || file.includes('\\'))
            throw new Error(
              `${indexPath}: weight_map["${name}"] must name a file in ${dir}, got ${JSON.stringify(file)}`,
            );
          const path = join(dirname(indexPath), file);
          if (!this.readers.has(path)) {
            if (!existsSync(path)) throw new Error(`${indexPath}: shard ${file} (holding ${name}) does not exist`);
            this.open(path);
          }
          this.fileOf.set(name, path);
        }
      } catch (e) {
        this.close();
        throw e;
      }
    } else {
      throw new Error(`${dir}: neither ${SINGLE_FILE} nor ${INDEX_FILE} (the transformers weights) is there`);
    }
  }

  private open(path: string): void {
    const reader = SafetensorsReader.open(path);
    this.readers.set(path, reader);
    for (const name of reader.names) if (!this.fileOf.has(name)) this.fileOf.set(name, path);
  }

  get names(): string[] {
    return [...this.fileOf.keys()];
  }

  has(name: string): boolean {
    return this.fileOf.has(name) && this.reader(name).has(name);
  }

  shape(name: string): readonly number[] {
    return this.reader(name).entry(name).shape;
  }

  /**
   * The tensor's values on the host, widened to float32 (float64 stays float64). The last one read is kept:
   * a fused tensor (Phi-3's qkv_proj) is read once for the parameters cut from it in turn.
   */
  values(name: string): Float32Array | Float64Array {
    if (this.last?.name === name) return this.last.values;
    this.last = null;
    const t = this.reader(name).readTensor(name, 'cpu');
    try {
      const values = t.toArray();
      if (values instanceof Int32Array) throw new Error(`${this.fileOf.get(name)}: ${name} is not floating point`);
      this.last = { name, values };
      return values;
    } finally {
      t.dispose();
    }
  }

  private last: { name: string; values: Float32Array | Float64Array } | null = null;

  private reader(name: string): SafetensorsReader {
    return this.readers.get(this.fileOf.get(name)!)!;
  }

  close(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
    this.last = null;
  }
}

/** Our head a is transformers' head (a mod G)·R + ⌊a / G⌋ (see the file comment). */
export function transformersHeadOf(ourHead: number, heads: number, kvHeads: number): number {
  const groupSize = heads / kvHeads;
  return (ourHead % kvHeads) * groupSize + Math.floor(ourHead / kvHeads);
}

/** Reorders head blocks of a [rows, columns] row-major matrix (or a vector: columns = 1). */
function reorderHeads(
  values: Float32Array | Float64Array,
  rows: number,
  columns: number,
  along: 'rows' | 'columns',
  c: AndromedaConfig,
): Float32Array | Float64Array {
  if (c.kvHeads === c.heads || c.kvHeads === 1) return values;
  const out = new (values.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(values.length);
  const d = c.headDim;
  for (let a = 0; a < c.heads; a++) {
    const h = transformersHeadOf(a, c.heads, c.kvHeads);
    if (along === 'rows') out.set(values.subarray(h * d * columns, (h + 1) * d * columns), a * d * columns);
    else
      for (let r = 0; r < rows; r++)
        out.set(values.subarray(r * columns + h * d, r * columns + (h + 1) * d), r * columns + a * d);
  }
  return out;
}

export interface HuggingFaceImportOptions {
  device?: string;
  /** Parameter dtype (default float32); stored bf16/fp16/fp32 weights are converted to it. */
  dtype?: DType;
}

export interface HuggingFaceCheckpoint {
  readonly config: AndromedaConfig;
  readonly architecture: string;
  /** Our parameters by name, on the requested device and dtype (the caller disposes them). */
  readonly weights: Map<string, Tensor>;
  readonly origin: CheckpointOrigin;
  readonly warnings: string[];
}

/** A checkpoint folder's config mapped onto ours, with the plan for reading its tensors. */
interface OpenCheckpoint {
  readonly config: AndromedaConfig;
  readonly architecture: string;
  readonly origin: CheckpointOrigin;
  readonly warnings: string[];
  /** Makes each of our parameters in turn (dtype and device as asked) and hands it over; closes the files. */
  readWeights(consume: (name: string, tensor: Tensor) => void): void;
  /** Closes the files without reading (readWeights closes them itself). */
  close(): void;
}

/**
 * Opens a transformers checkpoint folder: its config mapped onto ours, and every problem with its tensors
 * (missing, unexpected, mis-shaped) reported together, before any parameter is allocated.
 */
function openCheckpoint(dir: string, o: HuggingFaceImportOptions): OpenCheckpoint {
  const dtype = o.dtype ?? 'float32';
  const { input, architecture, tiedEmbeddings, rotatedQueryKeyScale, warnings } = configFromHuggingFace(
    readHuggingFaceConfig(dir),
    join(dir, 'config.json'),
  );
  const config = resolveConfig(input);
  assertModelFitsMemory(config, DTYPE_BYTES[dtype]);
  const sources = weightSources(config, architecture, tiedEmbeddings, rotatedQueryKeyScale);
  const shapes = parameterShapes(config);
  const files = new CheckpointFiles(dir);
  try {
    checkTensors(files, sources, shapes, config, tiedEmbeddings);
  } catch (e) {
    files.close();
    throw e;
  }
  // Names say how a tensor was made where it is not a plain copy (score --grads reports under these names).
  const reordered = config.kvHeads !== config.heads && config.kvHeads !== 1;
  const parameters: OriginalName[] = sources.map((s) => ({
    name: s.name,
    originalName:
      s.parts.length === 0
        ? '(zeros: transformers has no logits bias)'
        : s.parts.map(partName).join(' + ') +
          (s.heads && reordered ? ' (query heads reordered)' : '') +
          (s.rotatedRowsScale ? ` (rotated rows × ${s.rotatedRowsScale}: the attention factor)` : ''),
    originalShape: shapes.get(s.name)!,
  }));
  return {
    config,
    architecture,
    origin: { format: `${HF_FORMAT}/${architecture}`, parameters },
    warnings,
    readWeights(consume) {
      try {
        for (const source of sources) {
          const shape = shapes.get(source.name)!;
          consume(source.name, Tensor.fromArray(sourceValues(files, source, shape, config), shape, dtype, o.device));
        }
      } finally {
        files.close();
      }
    },
    close: () => files.close(),
  };
}

/** Reads a transformers checkpoint folder into our config and parameters (all held at once). */
export function readHuggingFaceCheckpoint(dir: string, o: HuggingFaceImportOptions = {}): HuggingFaceCheckpoint {
  const checkpoint = openCheckpoint(dir, o);
  const weights = new Map<string, Tensor>();
  try {
    checkpoint.readWeights((name, tensor) => weights.set(name, tensor));
  } catch (e) {
    for (const t of weights.values()) t.dispose();
    throw e;
  }
  const { config, architecture, origin, warnings } = checkpoint;
  return { config, architecture, weights, origin, warnings };
}

const partName = (p: TensorPart): string =>
  p.rows ? `${p.tensor}[rows ${p.rows.start}:${p.rows.start + p.rows.count}]` : p.tensor;

function sourceValues(
  files: CheckpointFiles,
  source: WeightSource,
  shape: readonly number[],
  c: AndromedaConfig,
): Float32Array | Float64Array {
  const size = shape.reduce((a, b) => a * b, 1);
  if (source.parts.length === 0) return new Float32Array(size);
  const partValues = (p: TensorPart): Float32Array | Float64Array => {
    const all = files.values(p.tensor);
    if (!p.rows) return all;
    const columns = all.length / p.rows.of;
    return all.subarray(p.rows.start * columns, (p.rows.start + p.rows.count) * columns);
  };
  let values: Float32Array | Float64Array;
  if (source.parts.length === 1) values = partValues(source.parts[0]!);
  else {
    const parts = source.parts.map(partValues);
    values = parts.some((p) => p instanceof Float64Array) ? new Float64Array(size) : new Float32Array(size);
    let offset = 0;
    for (const p of parts) {
      values.set(p, offset);
      offset += p.length;
    }
  }
  const rows = shape[0]!;
  const columns = shape.length > 1 ? shape[1]! : 1;
  if (source.rotatedRowsScale) values = scaleRotatedRows(values, columns, source.rotatedRowsScale, c);
  if (!source.heads) return values;
  return reorderHeads(values, rows, columns, source.heads, c);
}

/** A copy with the first rotary-dim rows of every head block (headDim rows) multiplied by `scale`. */
function scaleRotatedRows(
  values: Float32Array | Float64Array,
  columns: number,
  scale: number,
  c: AndromedaConfig,
): Float32Array | Float64Array {
  const out = values.slice();
  const rotated = c.rotary!.dim;
  for (let row = 0; row * columns < out.length; row++)
    if (row % c.headDim < rotated) for (let i = row * columns; i < (row + 1) * columns; i++) out[i]! *= scale;
  return out;
}

/** Every problem with the checkpoint's tensors at once: missing, unexpected, mis-shaped. */
function checkTensors(
  files: CheckpointFiles,
  sources: readonly WeightSource[],
  shapes: Map<string, number[]>,
  c: AndromedaConfig,
  tied: boolean,
): void {
  const missing: string[] = [];
  const misShaped: string[] = [];
  const used = new Set<string>();
  for (const source of sources) {
    const shape = shapes.get(source.name)!;
    // The whole stored tensor's shape: a fused one has all its blocks' rows.
    const storedShape = (part: TensorPart): number[] =>
      part.rows
        ? [part.rows.of, ...shape.slice(1)]
        : source.parts.length === 1
          ? shape
          : [shape[0]! / source.parts.length, ...shape.slice(1)];
    for (const part of source.parts) {
      const name = part.tensor;
      if (used.has(name)) continue;
      used.add(name);
      const expected = storedShape(part);
      if (!files.has(name)) missing.push(name);
      else if (!shapesEqual(files.shape(name), expected))
        misShaped.push(
          `${name}: config.json gives ${formatShape(expected)}, the file has ${formatShape(files.shape(name))}`,
        );
    }
  }
  // Tied checkpoints may still store lm_head.weight (a copy of the embedding); rotary buffers are recomputed.
  const ignorable = (name: string): boolean =>
    (tied && name === 'lm_head.weight') || name.endsWith('.rotary_emb.inv_freq');
  const unexpected = files.names.filter((n) => !used.has(n) && !ignorable(n));
  const problems: string[] = [];
  if (missing.length) problems.push(`missing (${missing.length}): ${missing.join(', ')}`);
  if (unexpected.length) problems.push(`unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
  if (misShaped.length) problems.push(`mismatched (${misShaped.length}): ${misShaped.join('; ')}`);
  if (problems.length)
    throw new Error(
      `${files.dir}: the tensors do not match the ${c.depth}-layer model of config.json:\n  ${problems.join('\n  ')}`,
    );
}

/**
 * Loads a transformers checkpoint folder as an Andromeda model, one tensor at a time into its parameters
 * (the peak is the model plus its largest tensor, not two copies of the model).
 */
export function importHuggingFace(
  dir: string,
  o: HuggingFaceImportOptions = {},
): { model: Andromeda; origin: CheckpointOrigin; warnings: string[]; architecture: string } {
  const checkpoint = openCheckpoint(dir, o);
  let model: Andromeda;
  try {
    model = new Andromeda(checkpoint.config, { device: o.device, dtype: o.dtype, initialize: false });
  } catch (e) {
    checkpoint.close();
    throw e;
  }
  const params = new Map(model.namedParameters());
  try {
    noGrad(() =>
      checkpoint.readWeights((name, tensor) => {
        const target = params.get(name)!;
        try {
          if (target.size > 0) target.engine.copy(tensor.strided(), target.strided(), target.shape);
        } finally {
          tensor.dispose();
        }
      }),
    );
  } catch (e) {
    model.dispose();
    throw e;
  }
  const { origin, warnings, architecture } = checkpoint;
  return { model, origin, warnings, architecture };
}
