/**
 * Runs a planned configuration on a real engine and reports what it used: the allocator's peak (bytes held by
 * live tensors, in the allocator's own rounded block sizes) and the tokens per second it ran at. The planner's
 * checks (tests/plan, bench/cpu-plan.ts, bench/gpu-plan.ts) put these beside the prediction.
 *
 * The runs follow the project's own paths: training is the trainer's arrangement (src/train/precision.ts: with a
 * low-precision compute dtype the model computes in it while float32 masters and the optimizer's state are
 * updated, the masters written back into the compute weights by the optimizer's pass); inference is the
 * InferenceEngine over its paged KV cache.
 *
 * On the CPU the weights are initialised as for training: the CPU's 8-bit AdamW finds each moment's code by a
 * branching search, which a constant-filled model's gradients (few distinct values) let the branch predictor run
 * five times faster than real gradients do (bench/results/plan.md). On CUDA they are left at their constant fill:
 * a 3B model's host-side initialisation would dominate the run, and memory does not depend on the values.
 */
import { getEngine } from '../engine/registry.js';
import { Andromeda } from '../model/andromeda.js';
import type { AndromedaConfig } from '../model/config.js';
import { Tensor } from '../tensor/tensor.js';
import { keep, tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { cast } from '../ops/convert.js';
import { AdamW } from '../optim/adamw.js';
import { AdamW8bit } from '../optim/adamw8bit.js';
import { clipGradNorm } from '../optim/clip.js';
import { AndromedaLM } from '../train/andromeda-adapter.js';
import { batchLoss, type BatchTensors } from '../train/next-token-loss.js';
import { ByteTokenizer } from '../data/tokenizer/byte.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { InferenceEngine } from '../inference/engine.js';
import type { ComputeDType, InferenceWorkload, TrainingWorkload } from './workload.js';
import { kvCacheBlocks } from './inference-memory.js';

export interface TrainingMeasurement {
  /** Highest bytes held by tensors during the measured steps, above what was held before the model existed. */
  peakBytes: number;
  /** Bytes held between steps once the optimizer's state exists: weights, masters, optimizer state. */
  steadyBytes: number;
  /** Seconds of each measured step (forward, backward, clipping, optimizer), after the warm-up steps. */
  stepSeconds: number[];
  /** Tokens of one step over its median time. */
  tokensPerSecond: number;
  /** CPU seconds the process spent in each measured step (every thread of the engine and of Node). */
  stepCpuSeconds: number[];
  /** Tokens of one step over its median CPU seconds: on a shared machine, what contention does not move. */
  tokensPerCpuSecond: number;
}

/** The model a measurement runs, its initialisation's temporaries kept out of the peak (see the file's comment). */
function measuredModel(config: AndromedaConfig, device: string, dtype: ComputeDType): Andromeda {
  const model = new Andromeda(config, { device, dtype, initialize: device === 'cpu', seed: 0 });
  getEngine(device).resetPeakMemory();
  return model;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** CPU seconds (user + system, all threads) this process has used since `since`. */
const cpuSecondsSince = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

/**
 * `steps` optimizer steps of `workload` (one micro-batch each) on `device`; the first `warmup` are not timed (the
 * allocator's cache and the GEMM plans fill up in them).
 */
export function measureTraining(
  config: AndromedaConfig,
  workload: TrainingWorkload,
  device: string,
  o: { steps?: number; warmup?: number; seed?: number } = {},
): TrainingMeasurement {
  const steps = o.steps ?? 4;
  const warmup = o.warmup ?? 2;
  const engine = getEngine(device);
  engine.synchronize();
  const before = engine.memoryStats().allocated;
  engine.resetPeakMemory();
  const lowPrecision = workload.precision !== 'float32';
  const model = measuredModel(config, device, workload.precision);
  const params = model.parameters();
  const masters = lowPrecision ? noGrad(() => params.map((p) => keep(cast(p, 'float32')).requireGrad(true))) : params;
  const hyper = { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const optimizer = workload.optimizer === 'adamw8bit' ? new AdamW8bit(masters, hyper) : new AdamW(masters, hyper);
  if (lowPrecision) optimizer.setShadows(new Map(masters.map((m, i) => [m, params[i]!])));
  // The trainer's batch (src/train/next-token-loss.ts): inputs and their next tokens as targets, one document per
  // row given as segment ids and positions (the trainer's default, segments on).
  let seed = o.seed ?? 12345;
  const { batch, seqLen } = workload;
  const ids = new Int32Array(batch * (seqLen + 1)).map(
    () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % config.vocabSize,
  );
  const inputs = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  for (let b = 0; b < batch; b++) {
    inputs.set(ids.subarray(b * (seqLen + 1), b * (seqLen + 1) + seqLen), b * seqLen);
    targets.set(ids.subarray(b * (seqLen + 1) + 1, (b + 1) * (seqLen + 1)), b * seqLen);
  }
  const shape = [batch, seqLen];
  const tensors: BatchTensors = {
    inputs: keep(Tensor.fromArray(inputs, shape, 'int32', device)),
    targets: keep(Tensor.fromArray(targets, shape, 'int32', device)),
    segmentIds: keep(Tensor.fromArray(new Int32Array(batch * seqLen), shape, 'int32', device)),
    positions: keep(
      Tensor.fromArray(
        new Int32Array(batch * seqLen).map((_, i) => i % seqLen),
        shape,
        'int32',
        device,
      ),
    ),
  };
  const lm = new AndromedaLM(model);
  const stepSeconds: number[] = [];
  const stepCpuSeconds: number[] = [];
  let steadyBytes = 0;
  try {
    for (let step = 0; step < steps; step++) {
      engine.synchronize();
      if (step === warmup) steadyBytes = engine.memoryStats().allocated - before;
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      tidy(() => {
        batchLoss(lm, tensors, 'mean', { activationCheckpointing: workload.activationCheckpointing }).backward();
      });
      if (lowPrecision)
        for (let i = 0; i < params.length; i++) {
          masters[i]!.grad = params[i]!.grad;
          params[i]!.grad = null;
        }
      const { scale } = clipGradNorm(masters, 1);
      optimizer.step({ gradScale: scale });
      optimizer.zeroGrad();
      engine.synchronize();
      if (step >= warmup) {
        stepSeconds.push((performance.now() - start) / 1000);
        stepCpuSeconds.push(cpuSecondsSince(cpuStart));
      }
    }
    const peakBytes = engine.memoryStats().peakAllocated - before;
    return {
      peakBytes,
      steadyBytes,
      stepSeconds,
      tokensPerSecond: (workload.batch * workload.seqLen) / median(stepSeconds),
      stepCpuSeconds,
      tokensPerCpuSecond: (workload.batch * workload.seqLen) / median(stepCpuSeconds),
    };
  } finally {
    for (const t of Object.values(tensors)) t?.dispose();
    optimizer.dispose();
    if (lowPrecision) for (const m of masters) m.dispose();
    model.dispose();
  }
}

export interface InferenceMeasurement {
  peakBytes: number;
  /** Prompt tokens of all requests over the time to the last request's first token. */
  prefillTokensPerSecond: number;
  /**
   * Decode with the whole batch running: the tokens generated after the last request's first token, over the time
   * from that token to the last one (the batch's prefill, which chunked prefill interleaves with the first requests'
   * decode steps, is left out: prefillTokensPerSecond has it). At batch 1: every token after the first.
   */
  decodeTokensPerSecond: number;
  /** The same tokens over the CPU seconds the process used in that time (all threads). */
  decodeTokensPerCpuSecond: number;
  /** Decode steps in that time (tokens after the first of the request that generated the most). */
  decodeSteps: number;
  /** CPU seconds of that time. */
  decodeCpuSeconds: number;
}

/** A tokenizer spanning the model's vocabulary (the engine only checks sizes; ids go in and come out). */
function vocabularyStandIn(vocabSize: number): Tokenizer {
  const bytes = new ByteTokenizer();
  return new Proxy(bytes, {
    get(target, key, receiver) {
      if (key === 'vocabSize') return vocabSize;
      const value = Reflect.get(target, key, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * `workload.batch` requests of `promptTokens` random ids each, submitted at once, each generating
 * `outputTokens` (greedy, end of document ignored), through an InferenceEngine whose KV pool holds exactly the
 * blocks the planner says the requests need; after a warm-up run of the same requests (its peak is counted too: a
 * serving engine has run such requests). The warm-up is the same shape because decode steps replay graphs
 * captured per bucket of batch size and block-table width on first use (src/inference/decode-graphs.ts): after a
 * short warm-up request the timed run's bucket would be captured inside the timed window, a one-time cost that
 * the planner's steady-state figure leaves out.
 */
export async function measureInference(
  config: AndromedaConfig,
  workload: InferenceWorkload,
  device: string,
  o: { seed?: number } = {},
): Promise<InferenceMeasurement> {
  const engine = getEngine(device);
  engine.synchronize();
  const before = engine.memoryStats().allocated;
  engine.resetPeakMemory();
  const model = measuredModel(config, device, workload.kvDtype);
  let seed = o.seed ?? 12345;
  const randomIds = (n: number): Int32Array =>
    Int32Array.from({ length: n }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % config.vocabSize);
  const inference = new InferenceEngine(new AndromedaLM(model), vocabularyStandIn(config.vocabSize), {
    blockSize: workload.blockSize,
    numBlocks: kvCacheBlocks(workload),
    maxBatch: workload.batch,
    tokenBudget: Math.max(workload.batch, workload.tokenBudget),
    cudaGraphs: workload.cudaGraphs,
    prefixSharing: false,
  });
  const runRequests = (onToken: () => void): Promise<number[][]> =>
    Promise.all(
      Array.from({ length: workload.batch }, async () => {
        const stream = inference.submit(randomIds(workload.promptTokens), {
          temperature: 0,
          maxTokens: workload.outputTokens,
          ignoreEos: true,
          startWithEos: false,
        });
        const times: number[] = [];
        for await (const _event of stream) {
          times.push(performance.now());
          onToken();
        }
        return times;
      }),
    );
  try {
    // Kernels loaded, GEMM plans made and the timed run's decode graphs captured before it starts.
    await runRequests(() => {});
    const submitted = performance.now();
    // The decode phase starts at the first request's first token: the prefill before it is not counted.
    let decodeCpuStart: NodeJS.CpuUsage | null = null;
    const runs = await runRequests(() => (decodeCpuStart ??= process.cpuUsage()));
    engine.synchronize();
    if (decodeCpuStart === null) throw new Error('measureInference: the requests generated no token');
    const decodeCpuSeconds = cpuSecondsSince(decodeCpuStart);
    const firsts = runs.map((t) => t[0]!);
    const lasts = runs.map((t) => t[t.length - 1]!);
    const generatedAfterFirst = runs.reduce((sum, t) => sum + t.length - 1, 0);
    const allRunning = Math.max(...firsts);
    const generatedWhileAllRun = runs.reduce((sum, t) => sum + t.filter((time) => time > allRunning).length, 0);
    return {
      peakBytes: engine.memoryStats().peakAllocated - before,
      prefillTokensPerSecond: (workload.batch * workload.promptTokens) / ((Math.max(...firsts) - submitted) / 1000),
      decodeTokensPerSecond:
        generatedWhileAllRun > 0
          ? generatedWhileAllRun / ((Math.max(...lasts) - allRunning) / 1000)
          : generatedAfterFirst / ((Math.max(...lasts) - Math.min(...firsts)) / 1000),
      decodeTokensPerCpuSecond: generatedAfterFirst / decodeCpuSeconds,
      decodeSteps: Math.max(...runs.map((t) => t.length - 1)),
      decodeCpuSeconds,
    };
  } finally {
    await inference.close();
    model.dispose();
  }
}
