/**
 * The training loop, in one place.
 *
 *   prepare   device, data, model, AdamW groups, loader; or all of these from a checkpoint (--resume)
 *   loop      for each optimizer step, inside `tidy` (memory stays flat):
 *               lr ← schedule(step)
 *               gradAccum micro-batches: forward, mean cross-entropy / gradAccum, backward
 *               global gradient norm → clip scale; divergence guard (NaN/inf: skip, K in a row: stop)
 *               AdamW step with the clip scale, zero gradients
 *               metrics line, progress bar; evaluation every N steps; checkpoint every N steps
 *   finish    checkpoint, final held-out evaluation (loss, bits per byte) vs the unigram baseline, plot
 *
 * Everything that decides the next step — weights, AdamW moments and step count, data-loader
 * position, RNG states, guard counters — is in the checkpoint, so a resumed run continues with
 * bit-identical results on the CPU.
 */
import '../engine/index.js';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { defaultGenerator } from '../tensor/random.js';
import { mul } from '../ops/elementwise.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { resolveDevice, setDefaultDevice, getDefaultDevice } from '../engine/registry.js';
import type { TrainingData } from '../data/training-data.js';
import type { MixtureLoaderState } from '../data/mixture.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { ConfigError, tokensPerStep, validateConfig, type TrainConfig } from './config.js';
import { openData, describeData } from './data.js';
import { learningRate, validateSchedule, type ScheduleOptions } from './schedule.js';
import { groupParameters } from './param-groups.js';
import { DivergenceGuard } from './guard.js';
import { MetricsLog, type TrainRecord } from './metrics.js';
import { writePlot } from './plot.js';
import { TrainProgress } from './progress.js';
import { batchLoss, batchTensors, evaluate, type EvalResult } from './evaluate.js';
import { unigramCosts } from './baseline.js';
import { CheckpointError, listCheckpoints, loadCheckpoint, loadOptimizerState, saveCheckpoint } from './checkpoint.js';
import { MasterWeights, resolvePrecision, type Precision } from './precision.js';
import { getModelFamily } from './families.js';
import type { LanguageModel, ModelFamily } from './model.js';
import { sleepSync } from './sleep.js';

/** Settings that may differ from the checkpoint's when resuming; any other difference is an error. */
export const RESUME_OVERRIDABLE: ReadonlySet<keyof TrainConfig> = new Set<keyof TrainConfig>([
  'steps', 'maxMinutes', 'evalEvery', 'evalTokens', 'finalEvalTokens', 'checkpointEvery', 'keepCheckpoints', 'device', 'maxBadSteps', 'dtype',
]);

export interface TrainOptions {
  /** Continue from the latest checkpoint in config.out. */
  resume?: boolean;
  /** Settings the user gave explicitly (on resume they override the checkpoint's, where allowed). */
  explicit?: Partial<TrainConfig>;
  /** Delete an earlier run's checkpoints and metrics in config.out instead of refusing to start. */
  overwrite?: boolean;
  /** Model family name (default "andromeda") or a family object (tests). */
  family?: string | ModelFamily<any>;
  /** Informational lines (default: stderr). */
  log?: (line: string) => void;
  /** Draw the progress bar on stderr. Default true. */
  progress?: boolean;
  /** Stops the loop after the current step (a checkpoint is written). */
  signal?: AbortSignal;
  /** Called after every checkpoint is in place. */
  onCheckpoint?: (dir: string, step: number) => void;
  /** Called after every optimizer step with its metrics. */
  onStep?: (record: TrainRecord) => void;
  /** Skip the final held-out evaluation (e.g. when interrupted). */
  skipFinalEval?: boolean;
}

export interface TrainResult {
  config: TrainConfig;
  out: string;
  device: string;
  precision: Precision;
  /** Optimizer steps completed. */
  step: number;
  startStep: number;
  stoppedBy: 'steps' | 'time' | 'signal';
  checkpointDir: string | null;
  finalEval: EvalResult | null;
  /** Add-one unigram cross-entropy of the held-out split (nats/token) and in bits per byte. */
  unigram: { loss: number; bitsPerByte: number };
  parameterCount: number;
  trainSeconds: number;
  totalTokens: number;
  /** The trained model and its tokenizer (the caller disposes the model). */
  model: LanguageModel;
  tokenizer: Tokenizer;
  family: ModelFamily<any>;
  familyName: string;
  modelConfig: Record<string, unknown>;
}

interface TrainerState {
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
}

const encodeRng = (s: number[]): Array<number | null> => s.map((v) => (Number.isNaN(v) ? null : v));
const decodeRng = (s: Array<number | null>): number[] => s.map((v) => (v === null ? NaN : v));

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
    throw new ConfigError(`--resume continues the saved run exactly, so these settings cannot change: ${refused.join('; ')}. Start a new run with another --out to change them.`);
  }
  return merged;
}

/** Runs (or resumes) a training run as configured; see the file comment for the steps. */
export async function train(initialConfig: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  let config = validateConfig({ ...initialConfig });
  const out = resolve(config.out);
  const familyName = typeof options.family === 'string' ? options.family : options.family ? 'custom' : 'andromeda';
  const family: ModelFamily<any> = typeof options.family === 'object' ? options.family : getModelFamily(familyName);
  if (!options.resume && !family.presets().includes(config.preset)) throw new ConfigError(`unknown model preset '${config.preset}' (known: ${family.presets().join(', ')})`);

  // ---- where we start: fresh, or from the latest checkpoint ----
  const existing = listCheckpoints(out);
  let resumeDir: string | null = null;
  let saved: TrainerState | null = null;
  if (options.resume) {
    const latest = existing.pop();
    if (!latest) throw new CheckpointError(`--resume: ${out} has no checkpoint to resume from (expected ${join(out, 'checkpoints', 'step-NNNNNN')})`);
    resumeDir = latest.dir;
  } else if (existing.length > 0) {
    if (!options.overwrite) {
      throw new ConfigError(`${out} already holds checkpoints of a run (latest: step ${existing[existing.length - 1].step}); pass --resume to continue it, --overwrite to start over, or choose another --out`);
    }
    rmSync(join(out, 'checkpoints'), { recursive: true, force: true });
  }

  const device = resolveDevice(config.device);
  const previousDevice = getDefaultDevice();
  setDefaultDevice(device);
  try {
    let loaded: Awaited<ReturnType<typeof loadCheckpoint>> | null = null;
    if (resumeDir) {
      try {
        loaded = await loadCheckpoint(resumeDir, device);
      } catch (error) {
        const older = existing[existing.length - 1];
        if (error instanceof CheckpointError && older) {
          throw new CheckpointError(`${error.message}. An older checkpoint exists (${older.dir}, step ${older.step}): remove ${resumeDir} to resume from it.`);
        }
        throw error;
      }
    }
    if (loaded) {
      saved = loaded.trainer as unknown as TrainerState | null;
      if (!saved || saved.version !== 1 || !saved.config || !saved.loader) {
        for (const t of loaded.weights.values()) t.dispose();
        throw new CheckpointError(`checkpoint ${loaded.dir} has no usable trainer state (trainer.json); it can be used for generation but not resumed`);
      }
      config = validateConfig(mergeResumeConfig({ ...saved.config, out: config.out }, options.explicit ?? {}), 'resumed config');
      log(`resuming ${out} from step ${loaded.step} (${loaded.dir})`);
    }
    const precision = resolvePrecision(config.dtype, device, family);
    const schedule: ScheduleOptions = { peak: config.lr, totalSteps: config.steps, warmupSteps: config.warmup, minRatio: config.minLrRatio, cooldownSteps: config.cooldown };
    validateSchedule(schedule);
    mkdirSync(out, { recursive: true });

    // ---- data ----
    log(`data: ${describeData(config)}`);
    if (loaded && !loaded.tokenizer) throw new CheckpointError(`checkpoint ${loaded.dir} has no tokenizer.json; it cannot be resumed`);
    const data: TrainingData = await openData(config, { tokenizer: loaded?.tokenizer ?? undefined, progress: options.progress ?? true, log });
    const tokenizer = data.tokenizer;

    // ---- model ----
    const preset = saved?.preset ?? config.preset;
    const modelConfig = loaded ? loaded.modelConfig : family.presetConfig(config.preset, tokenizer.vocabSize, config.model);
    const modelVocab = Number((modelConfig as { vocabSize?: unknown }).vocabSize ?? tokenizer.vocabSize);
    if (modelVocab < tokenizer.vocabSize) throw new ConfigError(`the model's vocabulary (${modelVocab}) is smaller than the tokenizer's (${tokenizer.vocabSize})`);
    const model = family.create(modelConfig as never, { seed: config.seed, device });
    if (loaded) {
      model.loadStateDict(loaded.weights);
      for (const t of loaded.weights.values()) t.dispose();
    }
    model.train();
    const named = model.namedParameters();
    const names = new Map<Tensor, string>(named.map(([n, t]) => [t, n]));
    const parameterCount = named.reduce((n, [, t]) => n + t.size, 0);
    const grouped = groupParameters(named.map(([name, tensor]) => ({ name, tensor })), { weightDecay: config.weightDecay });
    const optimizer = new AdamW(grouped.groups, { lr: config.lr, beta1: config.beta1, beta2: config.beta2, eps: config.eps });
    if (loaded) loadOptimizerState(loaded.dir, optimizer as never, names);
    const params = named.map(([, t]) => t);
    // Mixed precision: forward/backward on a low-precision copy, updates on the float32 masters.
    const mixed = precision.compute === 'float32' ? null : MasterWeights.create(family, modelConfig, model, precision.compute, device);
    // Each AdamW step writes the updated masters into the compute copy (in the update's pass on CUDA).
    if (mixed) optimizer.setShadows(mixed.shadows());
    const computeModel = mixed ? mixed.compute : model;
    computeModel.train();

    // ---- loader, RNG, guard, metrics ----
    const loader = data.createLoader({ seqLen: config.seqLen, batchSize: config.batchSize, seed: config.seed, segments: config.segments }, saved?.loader);
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
    const costs = unigramCosts(data.sources.map((s) => s.tokens), tokenizer.vocabSize);
    const unigram = heldOutUnigram(data, costs);

    log(`model: ${familyName} preset "${preset}", ${(parameterCount / 1e6).toFixed(2)}M parameters; vocab ${tokenizer.vocabSize} (${tokenizer.kind}); device ${device}; compute ${precision.compute}, master weights ${precision.master}`);
    log(`optimizer: AdamW (β ${config.beta1}/${config.beta2}, wd ${config.weightDecay} on ${grouped.decay.length} matrices, 0 on ${grouped.noDecay.length} norms/biases/embeddings), lr ${config.lr} warmup ${config.warmup} cosine → ${config.minLrRatio * 100}%${config.cooldown ? ` then cool-down ${config.cooldown}` : ''}, clip ${config.clip || 'off'}`);
    log(`batches: ${config.batchSize} × ${config.seqLen} tokens × ${config.gradAccum} accumulation = ${tokensPerStep(config)} tokens/step; ${config.steps} steps; held-out ${data.heldOut.length} tokens; unigram baseline ${unigram.loss.toFixed(4)} nats/token (${unigram.bitsPerByte.toFixed(3)} bits/byte)`);

    const plotInfo = () => ({
      title: `Andromeda training: ${preset} (${(parameterCount / 1e6).toFixed(2)}M parameters)`,
      notes: [
        `data: ${describeData(config)}`,
        `${config.batchSize}×${config.seqLen}×${config.gradAccum} tokens/step, ${config.steps} steps, lr ${config.lr}, device ${device}, compute ${precision.compute}`,
        `unigram baseline: ${unigram.loss.toFixed(4)} nats/token (${unigram.bitsPerByte.toFixed(3)} bits/byte)`,
      ],
      lossReferences: [{ label: 'unigram baseline', value: unigram.loss }],
    });
    const refreshPlot = () => writePlot(join(out, 'plot.html'), metrics.read(), plotInfo());

    let totalTokens = saved?.totalTokens ?? 0;
    const priorSeconds = saved?.trainSeconds ?? 0;
    let lastCheckpoint: string | null = loaded?.dir ?? null;
    let lastCheckpointStep = loaded ? startStep : -1;
    const started = Date.now();
    const trainSeconds = () => priorSeconds + (Date.now() - started) / 1000;

    const checkpoint = async (step: number) => {
      const state: TrainerState = {
        version: 1,
        family: familyName,
        preset,
        config,
        loader: loader.state(),
        rng: { default: encodeRng(defaultGenerator.getState()) },
        guard: guard.state(),
        totalTokens,
        trainSeconds: trainSeconds(),
      };
      const dir = await saveCheckpoint(out, {
        step,
        modelConfig,
        weights: model.stateDict(),
        optimizer: { optimizer: optimizer as never, names },
        tokenizer,
        trainer: state as unknown as Record<string, unknown>,
      }, config.keepCheckpoints);
      lastCheckpoint = dir;
      lastCheckpointStep = step;
      progress.log(`checkpoint saved: ${dir} (step ${step})`);
      refreshPlot();
      options.onCheckpoint?.(dir, step);
    };

    const runEval = (step: number, maxTokens: number, label: string): EvalResult => {
      const result = evaluate(computeModel, data, {
        seqLen: config.seqLen, batchSize: config.batchSize, segments: config.segments, device, maxTokens, unigramCosts: costs,
      });
      metrics.append({ kind: 'eval', step, loss: result.loss, bitsPerByte: result.bitsPerByte, tokens: result.tokens, unigramLoss: result.unigramLoss });
      progress.log(`${label} step ${step}: held-out loss ${result.loss.toFixed(4)} nats/token, ${result.bitsPerByte.toFixed(4)} bits/byte (unigram baseline on the same ${result.tokens} tokens: ${result.unigramLoss.toFixed(4)}, ${result.unigramBitsPerByte.toFixed(4)} bits/byte; ${result.seconds.toFixed(1)}s)`);
      refreshPlot();
      return result;
    };

    // ---- the loop ----
    const progress = new TrainProgress(process.stderr, undefined, options.progress ?? true, log);
    const stepDelay = Number(process.env.ANDROMEDA_TEST_STEP_DELAY_MS ?? 0);
    const recent: number[] = [];
    let step = startStep;
    let stoppedBy: TrainResult['stoppedBy'] = 'steps';
    let lastLoss = NaN;
    const budgetSeconds = config.maxMinutes > 0 ? config.maxMinutes * 60 : Infinity;
    while (step < config.steps) {
      if (options.signal?.aborted) {
        stoppedBy = 'signal';
        break;
      }
      const elapsedHere = (Date.now() - started) / 1000;
      const typical = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : 0;
      if (elapsedHere + typical > budgetSeconds) {
        stoppedBy = 'time';
        progress.log(`time limit of ${config.maxMinutes} minutes reached at step ${step}`);
        break;
      }
      const stepStarted = Date.now();
      const lr = learningRate(step, schedule);
      optimizer.setHyper('lr', lr);
      let lossSum = 0;
      for (let micro = 0; micro < config.gradAccum; micro++) {
        const batch = loader.next();
        lossSum += tidy(() => {
          const loss = batchLoss(computeModel, batchTensors(batch, device, config.segments), 'mean', { checkpoint: config.activationCheckpointing });
          const value = loss.item();
          if (Number.isFinite(value)) (config.gradAccum > 1 ? mul(loss, 1 / config.gradAccum) : loss).backward();
          return value;
        });
      }
      const loss = lossSum / config.gradAccum;
      mixed?.pushGradients();
      const { norm, scale } = Number.isFinite(loss) ? clipGradNorm(params, config.clip > 0 ? config.clip : Infinity) : { norm: NaN, scale: 1 };
      const verdict = guard.check(step + 1, loss, norm);
      if (!verdict.skip) optimizer.step({ gradScale: scale });
      optimizer.zeroGrad();
      sleepSync(stepDelay);
      step++;

      const seconds = (Date.now() - stepStarted) / 1000;
      recent.push(seconds);
      if (recent.length > 20) recent.shift();
      const tokens = tokensPerStep(config);
      totalTokens += tokens;
      if (Number.isFinite(loss)) lastLoss = loss;
      const record: TrainRecord = {
        kind: 'train', step, loss, lr, gradNorm: norm, tokens, totalTokens,
        tokensPerSecond: tokens / Math.max(seconds, 1e-6), elapsed: Number(trainSeconds().toFixed(3)),
        ...(verdict.skip ? { skipped: true } : {}),
      };
      metrics.append(record);
      if (verdict.skip) {
        progress.log(`warning: ${verdict.message}`);
        metrics.append({ kind: 'event', step, message: verdict.message! });
      }
      options.onStep?.(record);
      const avg = recent.reduce((a, b) => a + b, 0) / recent.length;
      progress.update({ step, totalSteps: config.steps, loss: lastLoss, lr, tokensPerSecond: tokens / avg, etaSeconds: avg * (config.steps - step) });

      if (config.evalEvery > 0 && step % config.evalEvery === 0 && step < config.steps) runEval(step, config.evalTokens, 'eval');
      if (config.checkpointEvery > 0 && step % config.checkpointEvery === 0) await checkpoint(step);
    }
    progress.end();

    // ---- finish ----
    if (lastCheckpointStep !== step) await checkpoint(step);
    let finalEval: EvalResult | null = null;
    if (!options.skipFinalEval && stoppedBy !== 'signal') finalEval = runEval(step, config.finalEvalTokens, 'final eval');
    refreshPlot();
    data.close();
    optimizer.dispose();
    mixed?.dispose();
    return {
      config, out, device, precision, step, startStep, stoppedBy, checkpointDir: lastCheckpoint, finalEval, unigram,
      parameterCount, trainSeconds: trainSeconds(), totalTokens, model, tokenizer, family, familyName, modelConfig,
    };
  } finally {
    setDefaultDevice(previousDevice);
  }
}


/** The unigram baseline over the whole held-out split: nats/token and bits/byte. */
function heldOutUnigram(data: TrainingData, costs: Float64Array): { loss: number; bitsPerByte: number } {
  const heldOut = data.heldOut;
  let total = 0;
  const chunk = 1 << 20;
  for (let start = 0; start < heldOut.length; start += chunk) {
    const part = heldOut.read(start, Math.min(chunk, heldOut.length - start));
    for (let i = 0; i < part.length; i++) total += costs[part[i]];
  }
  const loss = heldOut.length > 0 ? total / heldOut.length : NaN;
  return { loss, bitsPerByte: data.heldOutTextBytes > 0 ? total / (Math.LN2 * data.heldOutTextBytes) : NaN };
}
