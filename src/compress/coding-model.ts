/**
 * The model whose next-byte probabilities drive the coder: a trained byte-level checkpoint
 * (offline), or a freshly initialised preset that learns as it codes (online). Both sides of the
 * coder build it from the same description and so compute the same logits.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { getEngine } from '../engine/registry.js';
import type { CpuEngine } from '../engine/cpu.js';
import { Andromeda } from '../model/andromeda.js';
import { resolveConfig, type AndromedaConfig } from '../model/config.js';
import { presetInput } from '../model/presets.js';
import { loadModelForInference } from '../inference/load.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { unwrapAndromeda } from '../train/andromeda-adapter.js';
import { resolveCheckpointDir, sha256File } from '../train/run-checkpoint.js';

/** ByteTokenizer ids 0–255 are the bytes; 256 is its end-of-text token, which starts every stream. */
const BYTE_VOCAB = 257;
const START_TOKEN = 256;

export interface CheckpointModelSpec {
  readonly kind: 'checkpoint';
  /** What the user passed (for messages). */
  readonly name: string;
  /** SHA-256 of the checkpoint's model.safetensors. */
  readonly sha256: string;
}

export interface OnlineModelSpec {
  readonly kind: 'online';
  readonly name: string;
  /** The preset the model starts from (its config is this build's preset, checked by the hash). */
  readonly preset: string;
  readonly seed: number;
  readonly learningRate: number;
  /**
   * The learning rate of step k is learningRate / (1 + k / lrDecaySteps); absent: constant (files
   * written before the decay existed have no such field and decode as they were coded).
   */
  readonly lrDecaySteps?: number;
  /** SHA-256 of the canonical JSON of the resolved config, seed and training settings: names the starting model. */
  readonly sha256: string;
}

export type CodingModelSpec = CheckpointModelSpec | OnlineModelSpec;

export interface CodingModel {
  readonly spec: CodingModelSpec;
  readonly model: Andromeda;
  readonly startToken: number;
  dispose(): void;
}

export interface OnlineOptions {
  preset: string;
  seed: number;
  learningRate: number;
  lrDecaySteps?: number;
}

function checkByteLevel(config: AndromedaConfig, what: string): void {
  if (config.vocabSize < BYTE_VOCAB)
    throw new Error(
      `${what}: compression needs a byte-level model (vocabulary ≥ ${BYTE_VOCAB}: 256 bytes + end of text), ` +
        `this one has ${config.vocabSize}`,
    );
}

function onlineConfig(preset: string): AndromedaConfig {
  return resolveConfig(presetInput(preset, { vocabSize: BYTE_VOCAB }));
}

/**
 * Config fields added after online files were first written, each with the value that leaves the model as it
 * was. The model's hash leaves them out while they hold that value, so a file coded before a field existed
 * still decodes; a field added to AndromedaConfig later belongs here too (tests/compress/compat.test.ts decodes
 * files coded by earlier builds).
 */
const LATER_FIELDS: Readonly<Record<string, unknown>> = {
  geluApproximation: 'none',
  normWeightOffset: 0,
  embeddingScale: 1,
  slidingWindowLayers: 'all',
  attentionScale: null,
  attentionSoftCap: null,
  logitSoftCap: null,
  sandwichNorm: false,
};
const LATER_ROTARY_FIELDS: Readonly<Record<string, unknown>> = { longRope: null };

function withoutNeutral<T extends object>(object: T, fields: Readonly<Record<string, unknown>>): T {
  return Object.fromEntries(
    Object.entries(object).filter(([key, value]) => !(key in fields && fields[key] === value)),
  ) as T;
}

/** The config as the hash describes it: the fields added later left out while they change nothing. */
function describedConfig(config: AndromedaConfig): AndromedaConfig {
  const described = withoutNeutral(config, LATER_FIELDS);
  return config.rotary ? { ...described, rotary: withoutNeutral(config.rotary, LATER_ROTARY_FIELDS) } : described;
}

function onlineHash(config: AndromedaConfig, seed: number, learningRate: number, lrDecaySteps?: number): string {
  const described = {
    config: describedConfig(config),
    seed,
    learningRate,
    ...(lrDecaySteps === undefined ? {} : { lrDecaySteps }),
  };
  return createHash('sha256').update(JSON.stringify(described)).digest('hex');
}

function checkLrDecaySteps(v: unknown, what: string): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1e9))
    throw new RangeError(`${what} must be an integer from 1 to 10^9, got ${String(v)}`);
}

export function onlineModelSpec(o: OnlineOptions): OnlineModelSpec {
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff)
    throw new RangeError(`--seed must be an integer from 0 to 2^32 − 1, got ${o.seed}`);
  if (!Number.isFinite(o.learningRate) || o.learningRate <= 0 || o.learningRate > 1)
    throw new RangeError(`--lr must be a number in (0, 1], got ${o.learningRate}`);
  checkLrDecaySteps(o.lrDecaySteps, '--lr-decay');
  const decay = o.lrDecaySteps === undefined ? '' : `, lr decay ${o.lrDecaySteps} steps`;
  return {
    kind: 'online',
    name: `online ${o.preset} (seed ${o.seed}, lr ${o.learningRate}${decay})`,
    preset: o.preset,
    seed: o.seed,
    learningRate: o.learningRate,
    ...(o.lrDecaySteps === undefined ? {} : { lrDecaySteps: o.lrDecaySteps }),
    sha256: onlineHash(onlineConfig(o.preset), o.seed, o.learningRate, o.lrDecaySteps),
  };
}

/** The preset's initial weights, drawn from the spec's seed. */
export function buildOnlineModel(spec: OnlineModelSpec): CodingModel {
  const config = onlineConfig(spec.preset);
  checkLrDecaySteps(spec.lrDecaySteps, `${spec.name}: lrDecaySteps`);
  if (onlineHash(config, spec.seed, spec.learningRate, spec.lrDecaySteps) !== spec.sha256)
    throw new Error(
      `${spec.name}: this build's ${spec.preset} preset is not the model the file was coded with (SHA-256 differs)`,
    );
  checkByteLevel(config, spec.name);
  const model = new Andromeda(config, { seed: spec.seed, device: 'cpu' });
  model.eval();
  return { spec, model, startToken: START_TOKEN, dispose: () => model.dispose() };
}

/** The SHA-256 of a checkpoint's weights (`path`: a checkpoint or a run directory), without loading it. */
export function checkpointHash(path: string): { dir: string; sha256: string } {
  const dir = resolveCheckpointDir(path);
  return { dir, sha256: sha256File(join(dir, 'model.safetensors')) };
}

/** Whether ids 0–255 stand for the bytes 0–255 (however the tokenizer file describes it). */
function isByteLevel(tokenizer: Tokenizer): boolean {
  if (tokenizer.vocabSize < BYTE_VOCAB || tokenizer.eosId < 256) return false;
  for (let b = 0; b < 256; b++) {
    const bytes = tokenizer.tokenBytes(b);
    if (bytes.length !== 1 || bytes[0] !== b) return false;
  }
  return true;
}

export async function loadCheckpointModel(path: string): Promise<CodingModel> {
  const { dir, sha256 } = checkpointHash(path);
  const loaded = await loadModelForInference(dir, 'cpu');
  const model = unwrapAndromeda(loaded.model);
  try {
    if (!model) throw new Error(`${path}: compression supports Andromeda checkpoints only`);
    if (!isByteLevel(loaded.tokenizer))
      throw new Error(
        `${path}: compression needs a byte-level model (ids 0–255 are the bytes 0–255, as the byte tokenizer ` +
          `makes them); this one's tokenizer (${loaded.tokenizer.kind}, ${loaded.tokenizer.vocabSize} ids) is not`,
      );
    checkByteLevel(model.config, path);
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
  model.eval();
  return {
    spec: { kind: 'checkpoint', name: path, sha256 },
    model,
    startToken: loaded.tokenizer.eosId,
    dispose: () => loaded.model.dispose(),
  };
}

/**
 * The engine the probabilities come from, as recorded in the header. The CPU engine's results do
 * not depend on the thread count, but they do on the SIMD kernels (FMA contraction, block sizes).
 */
export function engineIdentity(): string {
  const info = (getEngine('cpu') as CpuEngine).cpuInfo();
  return `cpu ${info.isa} (gemm ${info.gemmF32})`;
}
