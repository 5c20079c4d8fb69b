/**
 * Training checkpoints, written atomically.
 *
 *   <out>/checkpoints/step-000010/
 *     config.json            the model config, in src/model/weights-file.ts's format
 *                            ({format: "andromeda-checkpoint", version: 1, model: <config>}), so
 *                            `andromeda score` and the model's loadCheckpoint read these directories
 *     model.safetensors      weights (float32 masters)
 *     optimizer.safetensors  AdamW moments per parameter name, step and hyperparameters in metadata
 *     tokenizer.json         the tokenizer the model was trained with
 *     trainer.json           step, training config, data-loader position, RNG states, guard, counters
 *     checkpoint.json        written last: format, step and the size + SHA-256 of every file above
 *
 * A checkpoint is assembled in a hidden temporary directory next to the others (".tmp-…"), every
 * file is fsynced, and only then is the directory renamed to its final name — one atomic rename.
 * A crash at any moment leaves either the complete new checkpoint or none; a partial temporary
 * directory is never taken for a checkpoint and is cleaned up by the next save. Loading checks
 * every file against checkpoint.json, and the manifest must list every core file present (and
 * config.json and model.safetensors always), so a damaged checkpoint gives a clear error, not
 * garbage. Given a run directory, loading takes its newest intact checkpoint and says which
 * damaged ones it passed over.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Tensor } from '../tensor/tensor.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { EngineSettingError } from '../engine/cpu-settings.js';
import type { Optimizer, OptimizerState } from '../optim/optimizer.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { loadTokenizer } from '../data/tokenizer/load.js';
import { readJsonFile } from '../io/bounded-read.js';

export const CHECKPOINT_FORMAT = 'andromeda-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_DIR = 'checkpoints';
const MANIFEST = 'checkpoint.json';
/** Files a checkpoint consists of; the manifest must vouch for each one present. */
const CORE_FILES = [
  'config.json',
  'model.safetensors',
  'optimizer.safetensors',
  'tokenizer.json',
  'trainer.json',
] as const;
/** Files without which a directory is not a checkpoint at all. */
const REQUIRED_FILES = ['config.json', 'model.safetensors'] as const;

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  step: number;
  createdAt: string;
  files: Record<string, { bytes: number; sha256: string }>;
}

export interface CheckpointWrite {
  step: number;
  /** Model config; written as config.json. */
  modelConfig: Record<string, unknown>;
  /** Tensors of model.safetensors. */
  weights: ReadonlyMap<string, Tensor>;
  optimizer?: { optimizer: Optimizer<object>; names: ReadonlyMap<Tensor, string> };
  tokenizer: Tokenizer;
  /** JSON-serializable trainer state (trainer.json). */
  trainer: Record<string, unknown>;
}

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export interface SaveOptions {
  /** The most recent checkpoints kept; older ones are removed after the new one is in place (0: all). Default 2. */
  keep?: number;
  /**
   * Called after each file is written into the temporary directory, manifest last, and awaited
   * (tests: a throw simulates a crash at that point, a delay a slow disk).
   */
  onFileWritten?: (file: string) => void | Promise<void>;
}

/** Writes a checkpoint under <outDir>/checkpoints atomically and returns its directory. */
export async function saveCheckpoint(
  outDir: string,
  data: CheckpointWrite,
  options: SaveOptions = {},
): Promise<string> {
  const keep = options.keep ?? 2;
  const root = join(outDir, CHECKPOINT_DIR);
  mkdirSync(root, { recursive: true });
  removeStaleTemporaries(root);
  const finalDir = join(root, stepDirName(data.step));
  const tmp = join(root, `.tmp-${stepDirName(data.step)}-${process.pid}-${Date.now()}`);
  mkdirSync(tmp);
  try {
    const written: string[] = [];
    const done = async (file: string) => {
      written.push(file);
      await options.onFileWritten?.(file);
    };
    writeFileSync(
      join(tmp, 'config.json'),
      JSON.stringify({ format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, model: data.modelConfig }, null, 2) +
        '\n',
    );
    await done('config.json');
    writeSafetensors(join(tmp, 'model.safetensors'), data.weights, { format: 'andromeda', step: String(data.step) });
    await done('model.safetensors');
    if (data.optimizer) {
      writeOptimizer(join(tmp, 'optimizer.safetensors'), data.optimizer.optimizer, data.optimizer.names);
      await done('optimizer.safetensors');
    }
    await data.tokenizer.save(join(tmp, 'tokenizer.json'));
    await done('tokenizer.json');
    writeFileSync(join(tmp, 'trainer.json'), JSON.stringify({ step: data.step, ...data.trainer }, null, 1) + '\n');
    await done('trainer.json');
    const files: CheckpointManifest['files'] = {};
    for (const file of written) {
      fsyncPath(join(tmp, file));
      files[file] = { bytes: statSync(join(tmp, file)).size, sha256: sha256File(join(tmp, file)) };
    }
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      version: CHECKPOINT_VERSION,
      step: data.step,
      createdAt: new Date().toISOString(),
      files,
    };
    writeFileSync(join(tmp, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    fsyncPath(join(tmp, MANIFEST));
    await options.onFileWritten?.(MANIFEST);
    fsyncPath(tmp);
    // The commit point. An existing directory of the same step (re-saved after a resume) is moved
    // aside first, because rename cannot replace a non-empty directory.
    let aside: string | null = null;
    if (existsSync(finalDir)) {
      aside = join(root, `.old-${stepDirName(data.step)}-${process.pid}-${Date.now()}`);
      renameSync(finalDir, aside);
    }
    renameSync(tmp, finalDir);
    fsyncPath(root);
    if (aside) rmSync(aside, { recursive: true, force: true });
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  pruneCheckpoints(root, keep);
  return finalDir;
}

function removeStaleTemporaries(root: string): void {
  for (const name of readdirSync(root)) {
    if (name.startsWith('.tmp-') || name.startsWith('.old-'))
      rmSync(join(root, name), { recursive: true, force: true });
  }
}

/** Complete checkpoints in a run directory, oldest first. */
export function listCheckpoints(outDir: string): Array<{ step: number; dir: string }> {
  const root = join(outDir, CHECKPOINT_DIR);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => ({ name, m: /^step-(\d+)$/.exec(name) }))
    .filter((e) => e.m && existsSync(join(root, e.name, MANIFEST)))
    .map((e) => ({ step: Number(e.m![1]), dir: join(root, e.name) }))
    .sort((a, b) => a.step - b.step);
}

function pruneCheckpoints(root: string, keep: number): void {
  if (keep <= 0) return;
  const all = listCheckpoints(join(root, '..'));
  for (const old of all.slice(0, Math.max(0, all.length - keep))) rmSync(old.dir, { recursive: true, force: true });
}

/**
 * The newest checkpoint of a run directory that passes verifyCheckpoint, or null when it has
 * none. Each newer, damaged one passed over is reported through `warn` with the reason.
 */
export function newestIntactCheckpoint(
  outDir: string,
  warn: (message: string) => void,
): { step: number; dir: string } | null {
  const all = listCheckpoints(outDir);
  for (let i = all.length - 1; i >= 0; i--) {
    try {
      verifyCheckpoint(all[i].dir);
      return all[i];
    } catch (error) {
      if (!(error instanceof CheckpointError)) throw error;
      const older = all[i - 1];
      warn(
        `warning: ${error.message}; ${
          older ? `trying the previous one (step ${older.step})` : 'no older checkpoint is left'
        }`,
      );
    }
  }
  return null;
}

const warnOnStderr = (message: string) => process.stderr.write(message + '\n');

/**
 * The checkpoint directory a user pointed at: a checkpoint itself, or a run directory (its
 * newest intact checkpoint; damaged newer ones are reported through `warn`). Throws a
 * CheckpointError saying what is wrong otherwise.
 */
export function resolveCheckpointDir(path: string, warn: (message: string) => void = warnOnStderr): string {
  const full = resolve(path);
  if (!existsSync(full)) throw new CheckpointError(`checkpoint not found: ${path} does not exist`);
  if (!statSync(full).isDirectory())
    throw new CheckpointError(
      `${path} is not a checkpoint: expected a directory (a run's --out directory or one of its ` +
        `checkpoints/step-NNNNNN)`,
    );
  if (existsSync(join(full, MANIFEST)) || existsSync(join(full, 'model.safetensors'))) return full;
  if (listCheckpoints(full).length > 0) {
    const intact = newestIntactCheckpoint(full, warn);
    if (intact) return intact.dir;
    throw new CheckpointError(
      `${path}: every checkpoint in ${join(full, CHECKPOINT_DIR)} is damaged (see the warnings above)`,
    );
  }
  throw new CheckpointError(
    `${path} holds no checkpoint: expected ${MANIFEST} and model.safetensors, or a ${CHECKPOINT_DIR}/step-NNNNNN ` +
      `directory inside it`,
  );
}

/** Reads checkpoint.json and checks every listed file's size and SHA-256. */
export function verifyCheckpoint(dir: string): CheckpointManifest {
  const where = `checkpoint ${dir}`;
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) throw new CheckpointError(`${where} is incomplete or corrupt: ${MANIFEST} is missing`);
  let manifest: CheckpointManifest;
  try {
    manifest = readJsonFile(path) as CheckpointManifest;
  } catch (error) {
    throw new CheckpointError(`${where} is corrupt: ${MANIFEST} is not valid JSON (${(error as Error).message})`);
  }
  if (manifest.format !== CHECKPOINT_FORMAT || typeof manifest.files !== 'object' || manifest.files === null)
    throw new CheckpointError(`${where} is corrupt: ${MANIFEST} is not an Andromeda checkpoint manifest`);
  if (manifest.version !== CHECKPOINT_VERSION)
    throw new CheckpointError(
      `${where}: checkpoint format version ${manifest.version} is not supported (expected ${CHECKPOINT_VERSION})`,
    );
  const dirStep = /^step-(\d+)$/.exec(basename(dir));
  if (dirStep && Number(dirStep[1]) !== manifest.step)
    throw new CheckpointError(
      `${where} is corrupt: ${MANIFEST} is for step ${manifest.step}, not the directory's step ${Number(dirStep[1])}`,
    );
  for (const file of CORE_FILES) {
    const listed = Object.hasOwn(manifest.files, file);
    const required = (REQUIRED_FILES as readonly string[]).includes(file);
    if (!listed && (required || existsSync(join(dir, file)))) {
      throw new CheckpointError(`${where} is corrupt: ${MANIFEST} does not list ${file}, so nothing vouches for it`);
    }
  }
  for (const [file, expected] of Object.entries(manifest.files)) {
    if (
      typeof expected !== 'object' ||
      expected === null ||
      typeof expected.sha256 !== 'string' ||
      typeof expected.bytes !== 'number'
    ) {
      throw new CheckpointError(`${where} is corrupt: ${MANIFEST}'s entry for ${file} has no size and SHA-256`);
    }
    const full = join(dir, file);
    if (!existsSync(full)) throw new CheckpointError(`${where} is corrupt: ${file} is missing`);
    const bytes = statSync(full).size;
    if (bytes !== expected.bytes)
      throw new CheckpointError(
        `${where} is corrupt: ${file} has ${bytes} bytes, expected ${expected.bytes} (truncated or overwritten)`,
      );
    if (sha256File(full) !== expected.sha256)
      throw new CheckpointError(
        `${where} is corrupt: ${file} does not match its SHA-256 checksum (the file was damaged)`,
      );
  }
  return manifest;
}

export interface LoadedCheckpoint {
  dir: string;
  step: number;
  modelConfig: Record<string, unknown>;
  /** Weights on `device` (the caller loads them into a model, then disposes them). */
  weights: Map<string, Tensor>;
  /** Null for checkpoints without tokenizer.json (e.g. converted from x-transformers). */
  tokenizer: Tokenizer | null;
  trainer: Record<string, unknown> | null;
  hasOptimizer: boolean;
}

function readJson(dir: string, file: string): Record<string, unknown> {
  try {
    return readJsonFile(join(dir, file)) as Record<string, unknown>;
  } catch (error) {
    throw new CheckpointError(`checkpoint ${dir} is corrupt: ${file} cannot be read (${(error as Error).message})`);
  }
}

/**
 * Loads (and verifies) a checkpoint's config, weights, tokenizer and trainer state. `path` is a
 * checkpoint or a run directory (then its newest intact checkpoint, damaged newer ones reported
 * through `warn`, stderr by default).
 */
export async function loadCheckpoint(
  path: string,
  device?: string,
  warn: (message: string) => void = warnOnStderr,
): Promise<LoadedCheckpoint> {
  const dir = resolveCheckpointDir(path, warn);
  const hasManifest = existsSync(join(dir, MANIFEST));
  const manifest = hasManifest ? verifyCheckpoint(dir) : null;
  for (const file of ['config.json', 'model.safetensors']) {
    if (!existsSync(join(dir, file))) throw new CheckpointError(`checkpoint ${dir} is incomplete: ${file} is missing`);
  }
  const configFile = readJson(dir, 'config.json');
  // The model's checkpoint format wraps the config; a bare config is accepted too.
  const modelConfig =
    configFile.format === CHECKPOINT_FORMAT && typeof configFile.model === 'object' && configFile.model !== null
      ? (configFile.model as Record<string, unknown>)
      : configFile;
  const trainer = existsSync(join(dir, 'trainer.json')) ? readJson(dir, 'trainer.json') : null;
  let tokenizer: Tokenizer | null = null;
  if (existsSync(join(dir, 'tokenizer.json'))) {
    try {
      tokenizer = await loadTokenizer(join(dir, 'tokenizer.json'));
    } catch (error) {
      throw new CheckpointError(`checkpoint ${dir}: ${(error as Error).message}`);
    }
  }
  let weights: Map<string, Tensor>;
  try {
    weights = readSafetensors(join(dir, 'model.safetensors'), { device }).tensors;
  } catch (error) {
    if (error instanceof EngineSettingError) throw error; // the engine starts here: not the checkpoint's fault
    throw new CheckpointError(`checkpoint ${dir} is corrupt: ${(error as Error).message}`);
  }
  return {
    dir,
    step: manifest?.step ?? Number(trainer?.step ?? 0),
    modelConfig,
    weights,
    tokenizer,
    trainer,
    hasOptimizer: existsSync(join(dir, 'optimizer.safetensors')),
  };
}

// Optimizer state: one tensor per (parameter name, slot), scalars and hyperparameters in metadata.

function writeOptimizer(path: string, optimizer: Optimizer<object>, names: ReadonlyMap<Tensor, string>): void {
  const state = optimizer.stateDict();
  const params = optimizer.parameters;
  const tensors = new Map<string, Tensor>();
  try {
    state.slots.forEach((slots, i) => {
      const p = params[i]!;
      const name = names.get(p);
      if (!name) throw new Error(`internal: optimizer parameter ${i} has no name`);
      for (const [slot, values] of Object.entries(slots)) {
        if (!values) continue;
        // Parameter-shaped float moments keep the parameter's shape; other state (packed int32 codes, per-block
        // scales) is saved flat, int32 bit for bit.
        const shape = values.length === p.size ? p.shape : [values.length];
        const dtype = values instanceof Int32Array ? 'int32' : 'float32';
        tensors.set(`${name}.${slot}`, Tensor.fromArray(values, shape, dtype, 'cpu'));
      }
    });
    writeSafetensors(path, tensors, {
      kind: state.kind,
      step: String(state.step),
      groups: JSON.stringify(state.groups),
      order: JSON.stringify(params.map((p) => names.get(p))),
    });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Restores an optimizer from optimizer.safetensors (parameters matched by name). */
export function loadOptimizerState(
  dir: string,
  optimizer: Optimizer<object>,
  names: ReadonlyMap<Tensor, string>,
): void {
  const path = join(dir, 'optimizer.safetensors');
  if (!existsSync(path))
    throw new CheckpointError(
      `checkpoint ${dir} has no optimizer state (optimizer.safetensors); it cannot be resumed exactly`,
    );
  let read: ReturnType<typeof readSafetensors>;
  try {
    read = readSafetensors(path, { device: 'cpu' });
  } catch (error) {
    if (error instanceof EngineSettingError) throw error;
    throw new CheckpointError(`checkpoint ${dir} is corrupt: ${(error as Error).message}`);
  }
  try {
    const meta = read.metadata;
    const groups = JSON.parse(meta.groups ?? '[]') as unknown[];
    const params = optimizer.parameters;
    const slots: OptimizerState['slots'] = params.map((p) => {
      const name = names.get(p)!;
      const entry: Record<string, Float32Array | Int32Array> = {};
      for (const [key, t] of read.tensors) {
        if (key.startsWith(`${name}.`) && !key.slice(name.length + 1).includes('.'))
          entry[key.slice(name.length + 1)] = t.toArray() as Float32Array | Int32Array;
      }
      return entry;
    });
    const known = new Set(params.map((p) => names.get(p)));
    const stray = [...read.tensors.keys()].filter((k) => !known.has(k.slice(0, k.lastIndexOf('.'))));
    if (stray.length > 0)
      throw new CheckpointError(
        `checkpoint ${dir}: optimizer state has entries for parameters the model does not ` +
          `have (${stray.slice(0, 5).join(', ')}${stray.length > 5 ? ', …' : ''})`,
      );
    optimizer.loadStateDict({ kind: meta.kind ?? 'adamw', step: Number(meta.step ?? 0), groups, slots });
  } finally {
    for (const t of read.tensors.values()) t.dispose();
  }
}

export function checkpointLabel(dir: string): string {
  return basename(dir);
}
