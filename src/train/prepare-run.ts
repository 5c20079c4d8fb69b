/**
 * Everything a training run needs before its first step, checked before anything large is
 * allocated: the run directory locked, the starting point (fresh, or the newest intact
 * checkpoint), the data with a usable held-out split, a memory plan that fits the device, then
 * the model, AdamW, the loader, the RNG, the guard and the metrics log.
 */
import '../engine/index.js';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import { defaultGenerator } from '../tensor/random.js';
import { AdamW } from '../optim/adamw.js';
import { AdamW8bit } from '../optim/adamw8bit.js';
import { getDefaultDevice, resolveDevice, setDefaultDevice } from '../engine/registry.js';
import type { TrainingData } from '../data/training-data.js';
import type { MixtureLoader, MixtureLoaderState } from '../data/mixture.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { unigramCosts, unigramTotal } from '../data/loss-units.js';
import { ConfigError, validateConfig, type TrainConfig } from './config.js';
import { openData } from './data.js';
import { groupParameters, type GroupedParameters } from './param-groups.js';
import { DivergenceGuard } from './guard.js';
import { MetricsLog } from './metrics-log.js';
import {
  CheckpointError,
  listCheckpoints,
  loadCheckpoint,
  loadOptimizerState,
  newestIntactCheckpoint,
  type LoadedCheckpoint,
} from './run-checkpoint.js';
import { MasterWeights, resolvePrecision, type Precision } from './precision.js';
import { getModelFamily } from './families.js';
import type { LanguageModel, ModelFamily } from './model.js';
import { acquireRunLock, type RunLock } from './run-lock.js';
import {
  checkTrainingMemory,
  deviceMemory,
  formatBytes,
  planAndromedaTrainingMemory,
  planTrainingMemory,
} from './memory-plan.js';
import { resolveConfig, type AndromedaConfigInput } from '../model/config.js';
import { isStepPlan, type StepPlan } from './step-plan.js';

/** Settings that may differ from the checkpoint's when resuming; any other difference is an error. */
export const RESUME_OVERRIDABLE: ReadonlySet<keyof TrainConfig> = new Set<keyof TrainConfig>([
  'steps',
  'maxMinutes',
  'evalEvery',
  'evalTokens',
  'finalEvalTokens',
  'checkpointEvery',
  'keepCheckpoints',
  'device',
  'maxBadSteps',
  'dtype',
]);

/** What a checkpoint's trainer.json holds besides the step. */
export interface TrainerState {
  version: 1;
  family: string;
  preset: string;
  config: TrainConfig;
  loader: MixtureLoaderState;
  /** The process-wide generator (initialisation, dropout masks drawn from it). */
  rng: { default: Array<number | null> };
  guard: { consecutive: number; skipped: number };
  totalTokens: number;
  trainSeconds: number;
  /** The steps the run was planned for (absent in checkpoints of runs planned by --steps alone). */
  plan?: StepPlan;
}

export const encodeRng = (s: number[]): Array<number | null> => s.map((v) => (Number.isNaN(v) ? null : v));
const decodeRng = (s: Array<number | null>): number[] => s.map((v) => (v === null ? NaN : v));

export interface PrepareOptions {
  resume?: boolean;
  explicit?: Partial<TrainConfig>;
  overwrite?: boolean;
  family?: string | ModelFamily<any>;
  progress?: boolean;
  log: (line: string) => void;
}

/** A run ready for its first (or next) step. */
export interface PreparedRun {
  config: TrainConfig;
  out: string;
  lock: RunLock;
  device: string;
  /** The default device before the run, restored when it ends. */
  previousDevice: string;
  precision: Precision;
  family: ModelFamily<any>;
  familyName: string;
  preset: string;
  modelConfig: Record<string, unknown>;
  data: TrainingData;
  tokenizer: Tokenizer;
  /** The float32 master model (saved in checkpoints, updated by AdamW). */
  model: LanguageModel;
  /** The model the forward and backward passes run on: the master, or its low-precision copy. */
  computeModel: LanguageModel;
  mixed: MasterWeights | null;
  optimizer: AdamW;
  grouped: GroupedParameters;
  params: Tensor[];
  names: Map<Tensor, string>;
  parameterCount: number;
  loader: MixtureLoader;
  guard: DivergenceGuard;
  metrics: MetricsLog;
  /** −ln p(t) of the unigram baseline, and its loss over the whole held-out split. */
  unigramCosts: Float64Array;
  unigram: { loss: number; bitsPerByte: number };
  startStep: number;
  /** The checkpoint resumed from, if any. */
  resumedFrom: string | null;
  totalTokens: number;
  priorTrainSeconds: number;
  /** The saved step plan to keep, or null when this session plans (again). */
  savedPlan: StepPlan | null;
}

/** Applies explicit settings over a checkpoint's config, refusing changes that would break exact resumption. */
export function mergeResumeConfig(saved: TrainConfig, explicit: Partial<TrainConfig>): TrainConfig {
  const merged: TrainConfig = { ...saved };
  const refused: string[] = [];
  for (const [key, value] of Object.entries(explicit) as [keyof TrainConfig, unknown][]) {
    if (value === undefined || key === 'out') continue;
    if (JSON.stringify(value) === JSON.stringify(saved[key])) continue;
    if (RESUME_OVERRIDABLE.has(key)) (merged as unknown as Record<string, unknown>)[key] = value;
    else refused.push(`${key} (checkpoint: ${JSON.stringify(saved[key])}, given: ${JSON.stringify(value)})`);
  }
  if (refused.length > 0) {
    throw new ConfigError(
      `--resume continues the saved run exactly, so these settings cannot change: ${refused.join('; ')}. Start a ` +
        `new run with another --out to change them.`,
    );
  }
  return merged;
}

/** Locks the run directory and prepares the run; on failure nothing stays locked or allocated. */
export async function prepareRun(initialConfig: TrainConfig, options: PrepareOptions): Promise<PreparedRun> {
  const { log } = options;
  const config = validateConfig({ ...initialConfig });
  const out = resolve(config.out);
  const familyName = typeof options.family === 'string' ? options.family : options.family ? 'custom' : 'andromeda';
  const family: ModelFamily<any> = typeof options.family === 'object' ? options.family : getModelFamily(familyName);
  if (!options.resume && !family.presets().includes(config.preset))
    throw new ConfigError(`unknown model preset '${config.preset}' (known: ${family.presets().join(', ')})`);

  const lock = acquireRunLock(out, log);
  const previousDevice = getDefaultDevice();
  const cleanup: Array<() => void> = [() => lock.release(), () => setDefaultDevice(previousDevice)];
  try {
    return await prepareLocked(config, out, family, familyName, lock, previousDevice, options, cleanup);
  } catch (error) {
    for (const undo of cleanup.reverse()) undo();
    throw error;
  }
}

async function prepareLocked(
  initialConfig: TrainConfig,
  out: string,
  family: ModelFamily<any>,
  familyName: string,
  lock: RunLock,
  previousDevice: string,
  options: PrepareOptions,
  cleanup: Array<() => void>,
): Promise<PreparedRun> {
  const { log } = options;
  let config = initialConfig;

  // ---- where we start: fresh, or from the newest intact checkpoint ----
  let loaded: LoadedCheckpoint | null = null;
  if (options.resume) {
    if (listCheckpoints(out).length === 0)
      throw new CheckpointError(
        `--resume: ${out} has no checkpoint to resume from (expected ${join(out, 'checkpoints', 'step-NNNNNN')})`,
      );
    const intact = newestIntactCheckpoint(out, log);
    if (!intact)
      throw new CheckpointError(
        `--resume: every checkpoint in ${join(out, 'checkpoints')} is damaged (see the warnings above); start over ` +
          `with --overwrite`,
      );
    // Host memory: the device is the resumed config's, known only from trainer.json, and nothing
    // goes onto an accelerator before the memory plan has been checked.
    loaded = await loadCheckpoint(intact.dir, 'cpu', log);
    cleanup.push(() => {
      for (const t of loaded!.weights.values()) t.dispose();
    });
  } else {
    const existing = listCheckpoints(out);
    if (existing.length > 0) {
      if (!options.overwrite) {
        throw new ConfigError(
          `${out} already holds checkpoints of a run (latest: step ${existing[existing.length - 1].step}); pass ` +
            `--resume to continue it, --overwrite to start over, or choose another --out`,
        );
      }
      rmSync(join(out, 'checkpoints'), { recursive: true, force: true });
    }
  }

  let saved: TrainerState | null = null;
  if (loaded) {
    saved = loaded.trainer as unknown as TrainerState | null;
    if (!saved || saved.version !== 1 || !saved.config || !saved.loader) {
      throw new CheckpointError(
        `checkpoint ${loaded.dir} has no usable trainer state (trainer.json); it can be used for generation but not ` +
          `resumed`,
      );
    }
    if (!loaded.tokenizer)
      throw new CheckpointError(`checkpoint ${loaded.dir} has no tokenizer.json; it cannot be resumed`);
    config = validateConfig(
      // Checkpoints from before the optimizer was a setting were written by AdamW.
      mergeResumeConfig(
        { ...saved.config, optimizer: (saved.config.optimizer as string | undefined) ?? 'adamw', out: config.out },
        options.explicit ?? {},
      ),
      'resumed config',
    );
    log(`resuming ${out} from step ${loaded.step} (${loaded.dir})`);
  }

  const device = resolveDevice(config.device);
  setDefaultDevice(device);
  const precision = resolvePrecision(config.dtype, device, family);

  // ---- data, and a held-out split the evaluations can use ----
  const data = await openData(config, {
    tokenizer: loaded?.tokenizer ?? undefined,
    progress: options.progress ?? true,
    log,
  });
  cleanup.push(() => data.close());
  requireHeldOut(data, config);
  const tokenizer = data.tokenizer;

  // ---- the model's shape, and the memory it will take ----
  const preset = saved?.preset ?? config.preset;
  const modelConfig = (
    loaded ? loaded.modelConfig : family.presetConfig(config.preset, tokenizer.vocabSize, config.model)
  ) as Record<string, unknown>;
  const modelVocab = Number(modelConfig.vocabSize ?? tokenizer.vocabSize);
  if (modelVocab < tokenizer.vocabSize)
    throw new ConfigError(
      `the model's vocabulary (${modelVocab}) is smaller than the tokenizer's (${tokenizer.vocabSize})`,
    );
  const memoryPlan =
    familyName === 'andromeda'
      ? planAndromedaTrainingMemory({
          model: resolveConfig(modelConfig as AndromedaConfigInput),
          config,
          compute: precision.compute === 'float32' ? 'float32' : 'bfloat16',
          device,
        })
      : planTrainingMemory({
          parameterCount: family.parameterCount ? family.parameterCount(modelConfig as never) : null,
          modelConfig,
          vocabSize: modelVocab,
          config,
          computeBytes: precision.compute === 'float32' ? 4 : 2,
          mixedPrecision: precision.compute !== 'float32',
        });
  const memory = deviceMemory(device);
  const memoryWarning = checkTrainingMemory(memoryPlan, memory);
  if (memoryWarning) log(memoryWarning);
  log(`memory: at least ${formatBytes(memoryPlan.bytes)} planned of ${formatBytes(memory.total)} (${memory.what})`);

  // ---- model, optimizer ----
  const model = family.create(modelConfig as never, { seed: config.seed, device });
  cleanup.push(() => model.dispose());
  if (loaded) {
    model.loadStateDict(loaded.weights);
    for (const t of loaded.weights.values()) t.dispose();
    loaded.weights.clear();
  }
  model.train();
  const named = model.namedParameters();
  const names = new Map<Tensor, string>(named.map(([n, t]) => [t, n]));
  const parameterCount = named.reduce((n, [, t]) => n + t.size, 0);
  const grouped = groupParameters(
    named.map(([name, tensor]) => ({ name, tensor })),
    { weightDecay: config.weightDecay },
  );
  const Optimizer = config.optimizer === 'adamw8bit' ? AdamW8bit : AdamW;
  const optimizer = new Optimizer(grouped.groups, {
    lr: config.lr,
    beta1: config.beta1,
    beta2: config.beta2,
    eps: config.eps,
  });
  cleanup.push(() => optimizer.dispose());
  if (loaded) loadOptimizerState(loaded.dir, optimizer as never, names);
  // Mixed precision: forward/backward on a low-precision copy, updates on the float32 masters.
  const mixed =
    precision.compute === 'float32'
      ? null
      : MasterWeights.create(family, modelConfig, model, precision.compute, device);
  // Each AdamW step writes the updated masters into the compute copy (in the update's pass on CUDA).
  if (mixed) {
    cleanup.push(() => mixed.dispose());
    optimizer.setShadows(mixed.shadows());
  }
  const computeModel = mixed ? mixed.compute : model;
  computeModel.train();

  // ---- loader, RNG, guard, metrics ----
  const loader = data.createLoader(
    { seqLen: config.seqLen, batchSize: config.batchSize, seed: config.seed, segments: config.segments },
    saved?.loader,
  );
  if (saved) defaultGenerator.setState(decodeRng(saved.rng.default));
  const guard = new DivergenceGuard(config.maxBadSteps);
  if (saved) guard.restore(saved.guard);
  const metrics = new MetricsLog(join(out, 'metrics.jsonl'));
  const startStep = loaded?.step ?? 0;
  metrics.truncateAfter(loaded ? startStep : null);
  if (!loaded) {
    rmSync(join(out, 'plot.html'), { force: true });
    writeFileSync(join(out, 'train-config.json'), JSON.stringify(config, null, 2) + '\n');
  }
  const costs = unigramCosts(
    data.sources.map((s) => s.tokens),
    tokenizer.vocabSize,
    200_000_000,
  );
  const heldOut = unigramTotal(costs, data.heldOut);

  // A resumed run keeps its plan (and so its learning-rate schedule) unless told a new limit.
  const replan = options.explicit?.steps !== undefined || options.explicit?.maxMinutes !== undefined;
  const savedPlan = saved && !replan && isStepPlan(saved.plan, config.steps) ? saved.plan : null;

  return {
    config,
    out,
    lock,
    device,
    previousDevice,
    precision,
    family,
    familyName,
    preset,
    modelConfig,
    data,
    tokenizer,
    model,
    computeModel,
    mixed,
    optimizer,
    grouped,
    params: named.map(([, t]) => t),
    names,
    parameterCount,
    loader,
    guard,
    metrics,
    unigramCosts: costs,
    unigram: {
      loss: heldOut.tokens > 0 ? heldOut.nats / heldOut.tokens : NaN,
      bitsPerByte: data.heldOutTextBytes > 0 ? heldOut.nats / (Math.LN2 * data.heldOutTextBytes) : NaN,
    },
    startStep,
    resumedFrom: loaded?.dir ?? null,
    totalTokens: saved?.totalTokens ?? 0,
    priorTrainSeconds: saved?.trainSeconds ?? 0,
    savedPlan,
  };
}

/**
 * Every evaluation reads rows of --seq-len + 1 held-out tokens; a split shorter than one row
 * would fail at the first evaluation, after the training it was meant to judge.
 */
function requireHeldOut(data: TrainingData, config: TrainConfig): void {
  const need = config.seqLen + 1;
  if (data.heldOut.length >= need) return;
  const remedy =
    config.inputs.length > 0
      ? `raise --val-fraction (now ${config.valFraction}; the dataset in ${join(config.out, 'data')} must then be ` +
        `deleted to re-tokenize it)`
      : config.data.length > 0
        ? 'tokenize the dataset with a larger --val-fraction'
        : 'use another corpus';
  throw new ConfigError(
    `the held-out split has ${data.heldOut.length} tokens, fewer than the ${need} (--seq-len + 1) one evaluation ` +
      `row needs; ${remedy}, or lower --seq-len`,
  );
}
