/**
 * The training loop, in three parts.
 *
 *   prepare   (prepare-run.ts) lock --out; start fresh or from the newest intact checkpoint;
 *             data and its held-out split, memory plan, model, AdamW, loader, RNG, guard
 *   loop      for each optimizer step, inside `tidy` (memory stays flat):
 *               lr ← schedule(step) over the planned steps (step-plan.ts)
 *               gradAccum micro-batches: forward, mean cross-entropy / gradAccum, backward
 *               global gradient norm, AdamW step clipped by it (optim/clip.ts: clipAndStep); divergence guard
 *               (NaN/inf: the update skipped, K in a row: stop); zero gradients
 *               metrics line, progress bar; evaluation every N steps; checkpoint every N steps
 *             then it yields to the event loop, so a stop request (Ctrl-C) is seen after this step
 *   finish    checkpoint, final held-out evaluation (loss, bits per byte) vs the unigram baseline, plot
 *
 * Everything that decides the next step — weights, AdamW moments and step count, data-loader
 * position, RNG states, guard counters, the step plan — is in the checkpoint, so a resumed run
 * continues with bit-identical results on the CPU.
 */
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { tidy } from '../tensor/scope.js';
import { defaultGenerator } from '../tensor/random.js';
import { mul } from '../ops/elementwise.js';
import { clipAndStep } from '../optim/clip.js';
import { setDefaultDevice } from '../engine/registry.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { tokensPerStep, type TrainConfig } from './config.js';
import { describeData } from './data.js';
import { learningRate, validateSchedule, type ScheduleOptions } from './schedule.js';
import type { TrainRecord } from './metrics-log.js';
import { writePlot } from './plot.js';
import { formatDuration, TrainProgress } from './training-progress.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { batchLoss, batchTensors } from './next-token-loss.js';
import { saveCheckpoint } from './run-checkpoint.js';
import type { Precision } from './precision.js';
import type { LanguageModel, ModelFamily } from './model.js';
import { encodeRng, prepareRun, type PreparedRun, type TrainerState } from './prepare-run.js';
import { MEASURED_STEPS, planFromThroughput, stepsOnlyPlan, type StepPlan } from './step-plan.js';
import { sleepSync } from './sleep.js';

export interface TrainOptions {
  /** Continue from the newest intact checkpoint in config.out. */
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
  /** Stops the loop after the current step (a checkpoint of that step is written). */
  signal?: AbortSignal;
  /** Called when a checkpoint starts being written (true) and when it is in place or failed (false). */
  onSaving?: (saving: boolean, step: number) => void;
  /** Called after every checkpoint is in place. */
  onCheckpoint?: (dir: string, step: number) => void;
  /** Called after every optimizer step with its metrics. */
  onStep?: (record: TrainRecord) => void;
  /** Skip the final held-out evaluation (e.g. when interrupted). */
  skipFinalEval?: boolean;
  /** Test hook: blocks each step this many milliseconds longer (as a slower model would). */
  stepDelayMs?: number;
  /** Test hook: called, and awaited, after each file of a checkpoint is written. */
  onCheckpointFile?: (file: string) => void | Promise<void>;
}

export type StopReason = 'steps' | 'time' | 'signal';

export interface TrainResult {
  config: TrainConfig;
  out: string;
  device: string;
  precision: Precision;
  /** Optimizer steps completed. */
  step: number;
  startStep: number;
  stoppedBy: StopReason;
  /** The steps the schedule was planned for (fewer than --steps when --max-minutes decided). */
  plan: StepPlan;
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

/** Runs (or resumes) a training run as configured; see the file comment for the parts. */
export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const run = await prepareRun(config, { ...options, log });
  let finished = false;
  try {
    const session = new TrainingSession(run, options, log);
    const stoppedBy = await session.loop();
    const result = await session.finish(stoppedBy);
    finished = true;
    return result;
  } finally {
    // finish() frees these itself, last; after a failure they are freed here.
    if (!finished) {
      run.data.close();
      run.optimizer.dispose();
      run.mixed?.dispose();
      run.model.dispose();
    }
    run.lock.release();
    setDefaultDevice(run.previousDevice);
  }
}

/** One process's part of a run: the loop and the finish, over a prepared run. */
class TrainingSession {
  private readonly config: TrainConfig;
  private readonly progress: TrainProgress;
  private readonly started = Date.now();
  private step: number;
  private totalTokens: number;
  private lastCheckpoint: string | null;
  private lastCheckpointStep: number;
  /** Null while the steps are being measured for a time budget. */
  private plan: StepPlan | null;
  private schedule: ScheduleOptions;

  constructor(
    private readonly run: PreparedRun,
    private readonly options: TrainOptions,
    private readonly log: (line: string) => void,
  ) {
    this.config = run.config;
    this.progress = new TrainProgress(process.stderr, undefined, options.progress ?? true, log);
    this.step = run.startStep;
    this.totalTokens = run.totalTokens;
    this.lastCheckpoint = run.resumedFrom;
    this.lastCheckpointStep = run.resumedFrom ? run.startStep : -1;
    this.plan = run.savedPlan ?? (this.config.maxMinutes > 0 ? null : stepsOnlyPlan(this.config.steps));
    this.schedule = this.scheduleFor(this.plan?.totalSteps ?? this.config.steps);
    this.describe();
  }

  private scheduleFor(totalSteps: number): ScheduleOptions {
    const c = this.config;
    // A plan shorter than warmup + cool-down keeps them whole; the run then stops inside them.
    const schedule = {
      peak: c.lr,
      totalSteps: Math.max(totalSteps, c.warmup + c.cooldown, 1),
      warmupSteps: c.warmup,
      minRatio: c.minLrRatio,
      cooldownSteps: c.cooldown,
    };
    validateSchedule(schedule);
    return schedule;
  }

  private trainSeconds(): number {
    return this.run.priorTrainSeconds + (Date.now() - this.started) / 1000;
  }

  private describe(): void {
    const { run, config } = this;
    const planned = this.plan
      ? `${this.plan.totalSteps} steps${
          this.plan.limit === 'time' ? ` (planned for --max-minutes; --steps ${config.steps})` : ''
        }`
      : `${config.steps} steps or ${config.maxMinutes} minutes, whichever comes first (the step count is planned ` +
        `from the throughput of the first ${MEASURED_STEPS + 1} steps)`;
    this.log(`data: ${describeData(config)}`);
    this.log(
      `model: ${run.familyName} preset "${run.preset}", ${(run.parameterCount / 1e6).toFixed(2)}M parameters; ` +
        `vocab ${run.tokenizer.vocabSize} (${run.tokenizer.kind}); device ${run.device}; compute ` +
        `${run.precision.compute}, master weights ${run.precision.master}`,
    );
    this.log(
      `optimizer: ${config.optimizer === 'adamw8bit' ? 'AdamW, 8-bit moments' : 'AdamW'} ` +
        `(β ${config.beta1}/${config.beta2}, wd ${config.weightDecay} on ${run.grouped.decay.length}` +
        ` matrices, 0 on ${run.grouped.noDecay.length} norms/biases/embeddings), lr ${config.lr} warmup ` +
        `${config.warmup} cosine → ${config.minLrRatio * 100}%${
          config.cooldown ? ` then cool-down ${config.cooldown}` : ''
        }, clip ${config.clip || 'off'}`,
    );
    this.log(
      `batches: ${config.batchSize} × ${config.seqLen} tokens × ${config.gradAccum} accumulation = ` +
        `${tokensPerStep(config)} tokens/step; ${planned}; held-out ${run.data.heldOut.length} tokens; unigram ` +
        `baseline ${run.unigram.loss.toFixed(4)} nats/token (${run.unigram.bitsPerByte.toFixed(3)} bits/byte)`,
    );
  }

  /** Trains until the plan, the time budget or a stop request ends the run. */
  async loop(): Promise<StopReason> {
    const { run, config } = this;
    const budgetSeconds = config.maxMinutes > 0 ? config.maxMinutes * 60 : Infinity;
    const tokens = tokensPerStep(config);
    const recent: number[] = [];
    const sessionSteps: number[] = [];
    let lastLoss = NaN;
    for (;;) {
      const totalSteps = this.plan?.totalSteps ?? config.steps;
      if (this.step >= totalSteps) {
        if (this.plan?.limit === 'time')
          this.progress.log(`reached the ${totalSteps} steps planned for --max-minutes ${config.maxMinutes}`);
        return this.plan?.limit ?? 'steps';
      }
      if (this.options.signal?.aborted) return 'signal';
      const elapsed = (Date.now() - this.started) / 1000;
      const typical = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : 0;
      if (elapsed + typical > budgetSeconds) {
        this.progress.log(`time limit of ${config.maxMinutes} minutes reached at step ${this.step}`);
        return 'time';
      }

      const stepStarted = Date.now();
      const lr = learningRate(this.step, this.schedule);
      const { loss, gradNorm, skipped, message } = this.trainStep(lr);
      sleepSync(this.options.stepDelayMs ?? 0);
      this.step++;
      const seconds = (Date.now() - stepStarted) / 1000;
      recent.push(seconds);
      if (recent.length > 20) recent.shift();
      sessionSteps.push(seconds);
      this.totalTokens += tokens;
      if (Number.isFinite(loss)) lastLoss = loss;
      const record: TrainRecord = {
        kind: 'train',
        step: this.step,
        loss,
        lr,
        gradNorm,
        tokens,
        totalTokens: this.totalTokens,
        tokensPerSecond: tokens / Math.max(seconds, 1e-6),
        elapsed: Number(this.trainSeconds().toFixed(3)),
        ...(skipped ? { skipped: true } : {}),
      };
      run.metrics.append(record);
      if (skipped) {
        this.progress.log(`warning: ${message}`);
        run.metrics.append({ kind: 'event', step: this.step, message: message! });
      }
      this.options.onStep?.(record);

      if (!this.plan && sessionSteps.length === MEASURED_STEPS + 1)
        this.planForBudget(sessionSteps.slice(1), budgetSeconds);
      const average = recent.reduce((a, b) => a + b, 0) / recent.length;
      const plannedSteps = this.plan?.totalSteps ?? config.steps;
      const secondsLeft = (Date.now() - this.started) / 1000;
      const eta = this.plan
        ? average * (plannedSteps - this.step)
        : Math.min(average * (config.steps - this.step), budgetSeconds - secondsLeft);
      this.progress.update({
        step: this.step,
        totalSteps: plannedSteps,
        loss: lastLoss,
        lr,
        tokensPerSecond: tokens / average,
        etaSeconds: eta,
      });

      const evalDue = config.evalEvery > 0 && this.step % config.evalEvery === 0 && this.step < plannedSteps;
      const checkpointDue = config.checkpointEvery > 0 && this.step % config.checkpointEvery === 0;
      // Before the checkpoint, so that it holds the plan the run goes on with.
      if (this.plan && Number.isFinite(budgetSeconds) && (evalDue || checkpointDue))
        this.shortenPlanIfLate(sessionSteps.length, budgetSeconds);
      if (evalDue) this.evaluate(config.evalTokens, 'eval');
      if (checkpointDue) await this.checkpoint();
      // Let signal handlers and other callbacks run: a stop request takes effect after this step.
      await nextTurn();
    }
  }

  /** One optimizer step at learning rate `lr`: accumulated micro-batches, clipping, the guard, AdamW. */
  private trainStep(lr: number): { loss: number; gradNorm: number; skipped: boolean; message?: string } {
    const { run, config } = this;
    run.optimizer.setHyper('lr', lr);
    let lossSum = 0;
    for (let micro = 0; micro < config.gradAccum; micro++) {
      const batch = run.loader.next();
      lossSum += tidy(() => {
        const loss = batchLoss(run.computeModel, batchTensors(batch, run.device, config.segments), 'mean', {
          activationCheckpointing: config.activationCheckpointing,
        });
        const value = loss.item();
        if (Number.isFinite(value)) (config.gradAccum > 1 ? mul(loss, 1 / config.gradAccum) : loss).backward();
        return value;
      });
    }
    const loss = lossSum / config.gradAccum;
    run.mixed?.pushGradients();
    // A finite loss: clip and step in one go (the step reads the norm on the device, and skips itself where the
    // norm is not finite); the guard then judges the step from the norm read back.
    const norm = Number.isFinite(loss)
      ? clipAndStep(run.optimizer, run.params, config.clip > 0 ? config.clip : Infinity).norm
      : NaN;
    const verdict = run.guard.check(this.step + 1, loss, norm);
    run.optimizer.zeroGrad();
    return { loss, gradNorm: norm, skipped: verdict.skip, message: verdict.message };
  }

  /** Plans the run's steps from the measured seconds per step, and the schedule with them. */
  private planForBudget(measured: number[], budgetSeconds: number): void {
    const c = this.config;
    const trainingSeconds = measured.reduce((a, b) => a + b, 0) / measured.length;
    // Periodic evaluations come later and cost time too: a forward pass (about a third of a
    // training step's work) per micro-batch of evaluated tokens, spread over --eval-every steps.
    const evalSeconds =
      c.evalEvery > 0
        ? ((c.evalTokens / (c.batchSize * c.seqLen)) * (trainingSeconds / c.gradAccum / 3)) / c.evalEvery
        : 0;
    const secondsPerStep = trainingSeconds + evalSeconds;
    const secondsLeft = budgetSeconds - (Date.now() - this.started) / 1000;
    this.plan = planFromThroughput(this.step, c.steps, secondsLeft, secondsPerStep);
    this.schedule = this.scheduleFor(this.plan.totalSteps);
    const measuredAs =
      `${trainingSeconds.toFixed(3)} s/step measured over ` +
      `steps ${this.step - measured.length + 1}–${this.step}${
        evalSeconds > 0 ? ` + ${evalSeconds.toFixed(3)} s/step estimated for evaluations` : ''
      }`;
    this.progress.log(
      this.plan.limit === 'time'
        ? `plan: --max-minutes ${c.maxMinutes} allows ` +
            `about ${this.plan.totalSteps} of the ${c.steps} steps (${measuredAs}, ${formatDuration(secondsLeft)}` +
            ` left); the learning-rate schedule and the ETA end at step ${this.plan.totalSteps}`
        : `plan: all ${c.steps} steps fit in --max-minutes ${c.maxMinutes} (${measuredAs})`,
    );
  }

  /**
   * Shortens the plan when the session's wall-clock pace (evaluations and checkpoints included,
   * which the first measurement could not see) will not reach the planned end within the budget:
   * the schedule then ends where the run will, rather than being cut off by the hard stop.
   * A plan is never lengthened, so the schedule only ever moves its end closer.
   */
  private shortenPlanIfLate(sessionSteps: number, budgetSeconds: number): void {
    const elapsed = (Date.now() - this.started) / 1000;
    const secondsPerStep = elapsed / sessionSteps;
    const revised = planFromThroughput(this.step, this.plan!.totalSteps, budgetSeconds - elapsed, secondsPerStep);
    if (revised.totalSteps >= this.plan!.totalSteps) return;
    this.plan = revised;
    this.schedule = this.scheduleFor(revised.totalSteps);
    this.progress.log(
      `plan: at ${secondsPerStep.toFixed(3)} s/step so far (evaluations and checkpoints included) the budget allows ` +
        `about ${revised.totalSteps} steps; the learning-rate schedule and the ETA now end there`,
    );
  }

  private evaluate(maxTokens: number, label: string): EvalResult {
    const { run, config } = this;
    const result = evaluate(run.computeModel, run.data, {
      seqLen: config.seqLen,
      batchSize: config.batchSize,
      segments: config.segments,
      device: run.device,
      maxTokens,
      unigramCosts: run.unigramCosts,
    });
    run.metrics.append({
      kind: 'eval',
      step: this.step,
      loss: result.loss,
      bitsPerByte: result.bitsPerByte,
      tokens: result.tokens,
      unigramLoss: result.unigramLoss,
    });
    this.progress.log(
      `${label} step ${this.step}: held-out ` +
        `loss ${result.loss.toFixed(4)} nats/token, ${result.bitsPerByte.toFixed(4)} bits/byte (unigram baseline on ` +
        `the same ${result.tokens} tokens: ${result.unigramLoss.toFixed(4)}, ` +
        `${result.unigramBitsPerByte.toFixed(4)} bits/byte; ${result.seconds.toFixed(1)}s)`,
    );
    this.refreshPlot();
    return result;
  }

  private async checkpoint(): Promise<void> {
    const { run, config } = this;
    const step = this.step;
    const state: TrainerState = {
      version: 1,
      family: run.familyName,
      preset: run.preset,
      config,
      loader: run.loader.state(),
      rng: { default: encodeRng(defaultGenerator.getState()) },
      guard: run.guard.state(),
      totalTokens: this.totalTokens,
      trainSeconds: this.trainSeconds(),
      ...(this.plan ? { plan: this.plan } : {}),
    };
    this.options.onSaving?.(true, step);
    try {
      this.lastCheckpoint = await saveCheckpoint(
        run.out,
        {
          step,
          modelConfig: run.modelConfig,
          weights: run.model.stateDict(),
          optimizer: { optimizer: run.optimizer as never, names: run.names },
          tokenizer: run.tokenizer,
          trainer: state as unknown as Record<string, unknown>,
        },
        { keep: config.keepCheckpoints, onFileWritten: this.options.onCheckpointFile },
      );
    } finally {
      this.options.onSaving?.(false, step);
    }
    this.lastCheckpointStep = step;
    this.progress.log(`checkpoint saved: ${this.lastCheckpoint} (step ${step})`);
    this.refreshPlot();
    this.options.onCheckpoint?.(this.lastCheckpoint, step);
  }

  private refreshPlot(): void {
    const { run, config } = this;
    writePlot(join(run.out, 'plot.html'), run.metrics.read(), {
      title: `Andromeda training: ${run.preset} (${(run.parameterCount / 1e6).toFixed(2)}M parameters)`,
      notes: [
        `data: ${describeData(config)}`,
        `${config.batchSize}×${config.seqLen}×${config.gradAccum} tokens/step, ` +
          `${this.plan?.totalSteps ?? config.steps} steps, lr ${config.lr}, device ${run.device}, compute ` +
          `${run.precision.compute}`,
        `unigram baseline: ${run.unigram.loss.toFixed(4)} nats/token (${run.unigram.bitsPerByte.toFixed(3)} bits/byte)`,
      ],
      lossReferences: [{ label: 'unigram baseline', value: run.unigram.loss }],
    });
  }

  /** The last checkpoint, the final evaluation (unless stopped by a signal), the plot; frees the run. */
  async finish(stoppedBy: StopReason): Promise<TrainResult> {
    const { run, config } = this;
    this.progress.end();
    if (this.lastCheckpointStep !== this.step) {
      if (stoppedBy === 'signal') this.log(`stopping at step ${this.step}: writing its checkpoint`);
      await this.checkpoint();
    }
    let finalEval: EvalResult | null = null;
    if (!this.options.skipFinalEval && stoppedBy !== 'signal')
      finalEval = this.evaluate(config.finalEvalTokens, 'final eval');
    this.refreshPlot();
    run.data.close();
    run.optimizer.dispose();
    run.mixed?.dispose();
    return {
      config,
      out: run.out,
      device: run.device,
      precision: run.precision,
      step: this.step,
      startStep: run.startStep,
      stoppedBy,
      plan: this.plan ?? stepsOnlyPlan(config.steps),
      checkpointDir: this.lastCheckpoint,
      finalEval,
      unigram: run.unigram,
      parameterCount: run.parameterCount,
      trainSeconds: this.trainSeconds(),
      totalTokens: this.totalTokens,
      model: run.model,
      tokenizer: run.tokenizer,
      family: run.family,
      familyName: run.familyName,
      modelConfig: run.modelConfig,
    };
  }
}
