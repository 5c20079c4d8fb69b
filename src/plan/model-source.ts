/**
 * The model a plan is for, from what a user has at hand: a preset name, a model config JSON (Andromeda's keys),
 * an Andromeda checkpoint (or a training run's folder: its newest intact checkpoint), or a Hugging Face
 * config.json (the file, or the folder holding it). Only the config is read; no weights are loaded.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ConfigError, resolveConfig, type AndromedaConfig, type AndromedaConfigInput } from '../model/config.js';
import { PRESET_NAMES, isPresetName, presetConfig } from '../model/presets.js';
import { CHECKPOINT_FORMAT, readCheckpointConfig } from '../model/weights-file.js';
import { configFromHuggingFace, type HuggingFaceConfigFile } from '../model/hf-families.js';
import { resolveCheckpointDir } from '../train/run-checkpoint.js';
import { readJsonFile, UnreadableFileError } from '../io/bounded-read.js';

export interface ModelSource {
  /** A short name for output: the preset, the file or the folder. */
  name: string;
  /** What was read, e.g. "preset", "Hugging Face LlamaForCausalLM config". */
  kind: string;
  config: AndromedaConfig;
  warnings: string[];
}

function readJson(path: string): unknown {
  try {
    return readJsonFile(path);
  } catch (e) {
    if (e instanceof UnreadableFileError) throw new ConfigError(e.message);
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

function fromJsonFile(path: string, overrides: Partial<AndromedaConfigInput>): ModelSource {
  const parsed = readJson(path);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new ConfigError(
      `${path}: expected a JSON object (a model config, a checkpoint's or a Hugging Face config.json)`,
    );
  const file = parsed as Record<string, unknown>;
  if (Array.isArray(file.architectures)) {
    const hf = configFromHuggingFace(file as HuggingFaceConfigFile, path);
    return {
      name: basename(dirname(path)) || path,
      kind: `Hugging Face ${hf.architecture} config`,
      config: resolveConfig({ ...hf.input, ...overrides }),
      warnings: hf.warnings,
    };
  }
  if (file.format === CHECKPOINT_FORMAT) {
    const checkpoint = readCheckpointConfig(dirname(path));
    return {
      name: basename(dirname(path)),
      kind: 'Andromeda checkpoint',
      config: resolveConfig({ ...checkpoint.model, ...overrides }),
      warnings: [],
    };
  }
  return {
    name: basename(path),
    kind: 'model config',
    config: resolveConfig({ ...(file as AndromedaConfigInput), ...overrides }),
    warnings: [],
  };
}

/** `spec` as a model; a ConfigError naming the problem when it is none of the accepted forms. */
export function resolveModelSource(spec: string, overrides: Partial<AndromedaConfigInput> = {}): ModelSource {
  if (isPresetName(spec)) return { name: spec, kind: 'preset', config: presetConfig(spec, overrides), warnings: [] };
  if (!existsSync(spec))
    throw new ConfigError(
      `model '${spec}' is neither a preset (${PRESET_NAMES.join(', ')}) nor an existing file or folder ` +
        '(a model config JSON, a checkpoint, or a Hugging Face config.json)',
    );
  if (!statSync(spec).isDirectory()) return fromJsonFile(spec, overrides);
  const config = join(spec, 'config.json');
  if (existsSync(config)) {
    const file = readJson(config) as Record<string, unknown> | null;
    if (file && typeof file === 'object' && (Array.isArray(file.architectures) || file.format === CHECKPOINT_FORMAT))
      return { ...fromJsonFile(config, overrides), name: basename(spec) };
  }
  const checkpoint = resolveCheckpointDir(spec, () => undefined);
  return { ...fromJsonFile(join(checkpoint, 'config.json'), overrides), name: basename(spec) };
}
