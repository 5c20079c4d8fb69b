/**
 * Our checkpoint format: a directory with `config.json` ({ format, version, model: <config>,
 * origin?: <name map of an imported checkpoint> }) and `model.safetensors` (parameters by our names).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { noGrad } from '../autograd/grad-mode.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import { resolveConfig, type AndromedaConfig } from './config.js';
import { Andromeda } from './andromeda.js';
import type { CheckpointOrigin } from './xtransformers-import.js';
import { readJsonFile } from '../io/bounded-read.js';

export const CHECKPOINT_FORMAT = 'andromeda-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';

export interface CheckpointConfigFile {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly version: number;
  readonly model: AndromedaConfig;
  readonly origin?: CheckpointOrigin;
}

export function saveCheckpoint(dir: string, model: Andromeda, o: { origin?: CheckpointOrigin } = {}): void {
  mkdirSync(dir, { recursive: true });
  const file: CheckpointConfigFile = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    model: model.config,
    ...(o.origin ? { origin: o.origin } : {}),
  };
  writeSafetensors(join(dir, WEIGHTS_FILE), model.stateDict(), { format: CHECKPOINT_FORMAT });
  writeFileSync(join(dir, CONFIG_FILE), `${JSON.stringify(file, null, 2)}\n`);
}

export function readCheckpointConfig(dir: string): CheckpointConfigFile {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) throw new Error(`${dir}: not an Andromeda checkpoint (no ${CONFIG_FILE})`);
  let file: CheckpointConfigFile;
  try {
    file = readJsonFile(path) as CheckpointConfigFile;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (file.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      `${path}: format is ${JSON.stringify(file.format)}, not '${CHECKPOINT_FORMAT}'${
        'wrapper' in file ? ' (an x-transformers checkpoint: convert it with `andromeda convert`)' : ''
      }`,
    );
  }
  if (file.version !== CHECKPOINT_VERSION)
    throw new Error(
      `${path}: checkpoint version ${file.version} is not supported (this build reads version ${CHECKPOINT_VERSION})`,
    );
  return { ...file, model: resolveConfig(file.model) };
}

export interface LoadCheckpointOptions {
  device?: string;
  /** Parameter dtype; default float32 (stored tensors are converted). */
  dtype?: DType;
}

/** Loads a checkpoint; missing, unexpected and mis-shaped tensors are reported together. */
export function loadCheckpoint(
  dir: string,
  o: LoadCheckpointOptions = {},
): { model: Andromeda; origin: CheckpointOrigin | null } {
  const file = readCheckpointConfig(dir);
  const weightsPath = join(dir, WEIGHTS_FILE);
  const reader = SafetensorsReader.open(weightsPath);
  try {
    const model = new Andromeda(file.model, { device: o.device, dtype: o.dtype, initialize: false });
    try {
      const params = new Map(model.stateDict());
      const missing = [...params.keys()].filter((n) => !reader.has(n));
      const unexpected = reader.names.filter((n) => !params.has(n));
      const misShaped = [...params]
        .filter(([n, t]) => reader.has(n) && !shapesEqual(reader.entry(n).shape, t.shape))
        .map(([n, t]) => `${n}: model ${formatShape(t.shape)}, file ${formatShape(reader.entry(n).shape)}`);
      const problems: string[] = [];
      if (missing.length) problems.push(`missing (${missing.length}): ${missing.join(', ')}`);
      if (unexpected.length) problems.push(`unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
      if (misShaped.length) problems.push(`wrong shape (${misShaped.length}): ${misShaped.join('; ')}`);
      if (problems.length)
        throw new Error(
          `${weightsPath}: the tensors do not match the model of ${CONFIG_FILE}:\n  ${problems.join('\n  ')}`,
        );
      noGrad(() => {
        for (const [name, target] of params) {
          const source = reader.readTensor(name, target.device);
          if (target.size > 0) target.engine.copy(source.strided(), target.strided(), target.shape);
          source.dispose();
        }
      });
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { model, origin: file.origin ?? null };
  } finally {
    reader.close();
  }
}
