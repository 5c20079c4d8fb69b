/**
 * `andromeda eval`'s work: for each checkpoint, under the position overrides, the held-out loss and bits
 * per byte by position bucket, and passkey and needle retrieval accuracy by prompt length and depth.
 */
import '../engine/index.js';
import { loadCheckpoint } from '../train/run-checkpoint.js';
import { Andromeda } from '../model/andromeda.js';
import { resolveConfig, type AndromedaConfig } from '../model/config.js';
import { ByteTokenizer } from '../data/tokenizer/byte.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { BucketAccumulator, positionBuckets, type BucketStats } from './position-buckets.js';
import { greedyContinuation, sequenceLosses } from './causal-scan.js';
import { fileDocument, heldOutDocuments, tokenByteCounts, tokenWindows, type EvalDocument } from './eval-text.js';
import { isCorrectAnswer, needlePrompt, passkeyPrompt, type RetrievalTask } from './retrieval-prompts.js';
import { applyPositionOverrides, describePositions, type PositionOverrides } from './position-overrides.js';

export interface RetrievalSettings {
  readonly lengths: readonly number[];
  readonly depths: readonly number[];
  /** Prompts (different numbers) per length and depth. */
  readonly trials: number;
}

export interface EvalSettings {
  /** Checkpoints (a run directory or one checkpoint) with the label each gets in tables and plots. */
  readonly models: ReadonlyArray<{ readonly label: string; readonly path: string }>;
  readonly overrides: PositionOverrides;
  /** Positions scored per window for the loss curve; 0 skips it. */
  readonly length: number;
  /** Most windows scored. */
  readonly windows: number;
  /** First bucket's width; default each model's training length. */
  readonly bucketWidth?: number;
  /** A text file to score instead of the bundled corpus's held-out split (also the needle's haystack). */
  readonly textFile?: string;
  /** The training length when the checkpoint does not record it (or to override what it records). */
  readonly trainLength?: number;
  readonly passkey: RetrievalSettings | null;
  readonly needle: RetrievalSettings | null;
  readonly device: string;
  /** Tokens per forward chunk. */
  readonly chunk: number;
  readonly seed: number;
  readonly log?: (line: string) => void;
}

export interface LossCurve {
  /** What was scored: the bundled corpus's held-out split or the file's path. */
  readonly source: string;
  readonly length: number;
  readonly windows: number;
  readonly buckets: readonly BucketStats[];
  /**
   * Mean loss over positions [0, trainingLength), the reference the curve is judged against; null when no bucket
   * ends there.
   */
  readonly lossAtTrainingLength: number | null;
}

export interface RetrievalCell {
  readonly length: number;
  readonly depth: number;
  readonly trials: number;
  readonly correct: number;
  readonly accuracy: number;
  /** Mean prompt length in tokens (whole filler sentences make it at most `length`). */
  readonly promptTokens: number;
  /** Each prompt's number and the model's greedy continuation. */
  readonly samples: ReadonlyArray<{ readonly answer: string; readonly continuation: string }>;
}

export interface RetrievalTable {
  readonly task: RetrievalTask;
  readonly cells: readonly RetrievalCell[];
  /** Accuracy per length over all depths. */
  readonly byLength: ReadonlyArray<{ readonly length: number; readonly accuracy: number }>;
  readonly accuracy: number;
}

export interface ModelReport {
  readonly label: string;
  /** The checkpoint directory read. */
  readonly checkpoint: string;
  readonly step: number;
  readonly parameters: number;
  readonly trainingLength: number;
  /** Position settings as trained, and as evaluated (after the overrides). */
  readonly trainedPositions: string;
  readonly evaluatedPositions: string;
  readonly loss: LossCurve | null;
  readonly passkey: RetrievalTable | null;
  readonly needle: RetrievalTable | null;
  readonly seconds: number;
}

export interface EvalReport {
  readonly version: 1;
  readonly overrides: PositionOverrides;
  readonly device: string;
  readonly models: readonly ModelReport[];
}

interface LoadedEvalModel {
  model: Andromeda;
  tokenizer: Tokenizer;
  dir: string;
  step: number;
  trainedConfig: AndromedaConfig;
  trainingLength: number;
}

async function loadEvalModel(path: string, settings: EvalSettings): Promise<LoadedEvalModel> {
  const ckpt = await loadCheckpoint(path, settings.device);
  try {
    const family = ckpt.trainer?.family;
    if (family !== undefined && family !== 'andromeda')
      throw new Error(`checkpoint ${ckpt.dir} is of the model family '${String(family)}'; eval reads Andromeda models`);
    const trainedConfig = resolveConfig(ckpt.modelConfig as never);
    const recordedLength = (ckpt.trainer?.config as { seqLen?: unknown } | undefined)?.seqLen;
    const trainingLength =
      settings.trainLength ?? (typeof recordedLength === 'number' ? recordedLength : trainedConfig.maxSeqLen);
    const config = applyPositionOverrides(trainedConfig, settings.overrides, trainingLength);
    const tokenizer = ckpt.tokenizer ?? (trainedConfig.vocabSize <= 257 ? new ByteTokenizer() : null);
    if (!tokenizer) throw new Error(`checkpoint ${ckpt.dir} has no tokenizer.json`);
    if (tokenizer.vocabSize > config.vocabSize)
      throw new Error(
        `checkpoint ${ckpt.dir}: its tokenizer's ${tokenizer.vocabSize} ids exceed the model's ${config.vocabSize}`,
      );
    const model = new Andromeda(config, { device: settings.device, initialize: false });
    try {
      model.loadStateDict(ckpt.weights);
    } catch (error) {
      model.dispose();
      throw error;
    }
    model.eval();
    return { model, tokenizer, dir: ckpt.dir, step: ckpt.step, trainedConfig, trainingLength };
  } finally {
    for (const t of ckpt.weights.values()) t.dispose();
  }
}

/** The loss by position bucket over up to `settings.windows` windows of `settings.length` predictions. */
export function lossCurve(
  model: Andromeda,
  tokenizer: Tokenizer,
  documents: readonly EvalDocument[],
  source: string,
  o: { length: number; windows: number; bucketWidth: number; trainingLength: number; chunk: number },
): LossCurve {
  const windows = tokenWindows(documents, o.length, o.windows);
  if (windows.length === 0) {
    const longest = Math.max(0, ...documents.map((d) => d.tokens.length));
    throw new Error(
      `no document of ${source} has the ${o.length + 1} tokens a window of --length ${o.length} needs (the longest ` +
        `has ${longest}); lower --length or give a longer --text file`,
    );
  }
  const bytesOf = tokenByteCounts(tokenizer);
  const accumulator = new BucketAccumulator(positionBuckets(o.length, o.bucketWidth));
  for (const window of windows) {
    const losses = sequenceLosses(model, window.tokens, o.chunk);
    const bytes = Float64Array.from(window.tokens.subarray(1), (t) => bytesOf[t] ?? 0);
    accumulator.add(losses, bytes);
  }
  const buckets = accumulator.stats();
  const reference = buckets.find((b) => b.end === o.trainingLength);
  return {
    source,
    length: o.length,
    windows: windows.length,
    buckets,
    lossAtTrainingLength: reference ? reference.lossUpToEnd : null,
  };
}

/** Accuracy of greedy answers to retrieval prompts, for every length × depth. */
export function retrievalTable(
  model: Andromeda,
  tokenizer: Tokenizer,
  task: RetrievalTask,
  s: RetrievalSettings,
  o: { haystack: string; chunk: number; seed: number },
): RetrievalTable {
  const cells: RetrievalCell[] = [];
  for (const length of s.lengths) {
    for (const depth of s.depths) {
      let correct = 0;
      let promptTokens = 0;
      const samples: Array<{ answer: string; continuation: string }> = [];
      for (let trial = 0; trial < s.trials; trial++) {
        const seed = o.seed * 1_000_003 + trial;
        const prompt =
          task === 'passkey'
            ? passkeyPrompt({ tokenizer, length, depth, seed })
            : needlePrompt({ tokenizer, length, depth, seed, haystack: o.haystack });
        promptTokens += prompt.tokens.length;
        // One token more than the answer needs, to see that no further digit follows it.
        const maxTokens = tokenizer.encode(` ${prompt.answer}`).length + 1;
        const continuation = greedyContinuation(model, prompt.tokens, {
          maxTokens,
          vocabLimit: tokenizer.vocabSize,
          stopId: tokenizer.eosId,
          chunk: o.chunk,
        });
        const text = tokenizer.decode(continuation);
        samples.push({ answer: prompt.answer, continuation: text });
        if (isCorrectAnswer(text, prompt.answer)) correct++;
      }
      cells.push({
        length,
        depth,
        trials: s.trials,
        correct,
        accuracy: correct / s.trials,
        promptTokens: promptTokens / s.trials,
        samples,
      });
    }
  }
  const mean = (xs: readonly RetrievalCell[]): number =>
    xs.reduce((a, c) => a + c.correct, 0) / xs.reduce((a, c) => a + c.trials, 0);
  return {
    task,
    cells,
    byLength: s.lengths.map((length) => ({ length, accuracy: mean(cells.filter((c) => c.length === length)) })),
    accuracy: mean(cells),
  };
}

/** Every retrieval length holds its prompt without filler (checked before any long run starts). */
function checkRetrievalLengths(tokenizer: Tokenizer, settings: EvalSettings): void {
  for (const [flag, s] of [
    ['--passkey', settings.passkey],
    ['--needle', settings.needle],
  ] as const) {
    for (const length of s?.lengths ?? []) {
      try {
        if (flag === '--passkey') passkeyPrompt({ tokenizer, length, depth: 0, seed: 0 });
        else needlePrompt({ tokenizer, length, depth: 0, seed: 0, haystack: 'Filler. ' });
      } catch (error) {
        throw new Error(`${flag} ${length}: ${(error as Error).message}`);
      }
    }
  }
}

export async function runEval(settings: EvalSettings): Promise<EvalReport> {
  const log = settings.log ?? (() => {});
  const reports: ModelReport[] = [];
  const documentCache = new Map<Tokenizer, EvalDocument[]>();
  for (const { label, path } of settings.models) {
    const started = Date.now();
    const loaded = await loadEvalModel(path, settings);
    const { model, tokenizer } = loaded;
    try {
      const source = settings.textFile ?? 'the bundled corpus, held-out split';
      let documents = documentCache.get(tokenizer);
      const needsText = settings.length > 0 || settings.needle !== null;
      if (!documents && needsText) {
        documents = settings.textFile
          ? [fileDocument(settings.textFile, tokenizer, '--text')]
          : await heldOutDocuments(tokenizer);
        documentCache.set(tokenizer, documents);
      }
      checkRetrievalLengths(tokenizer, settings);
      log(`${label}: ${loaded.dir} (step ${loaded.step}), ${describePositions(model.config)}`);
      let loss: LossCurve | null = null;
      if (settings.length > 0) {
        loss = lossCurve(model, tokenizer, documents!, source, {
          length: settings.length,
          windows: settings.windows,
          bucketWidth: settings.bucketWidth ?? loaded.trainingLength,
          trainingLength: loaded.trainingLength,
          chunk: settings.chunk,
        });
        log(`${label}: loss over ${loss.windows} windows of ${loss.length} positions done`);
      }
      const haystack = documents ? documents.map((d) => d.text).join('\n') : '';
      const retrieval = (task: RetrievalTask, s: RetrievalSettings | null): RetrievalTable | null => {
        if (!s) return null;
        const table = retrievalTable(model, tokenizer, task, s, {
          haystack,
          chunk: settings.chunk,
          seed: settings.seed,
        });
        log(`${label}: ${task} accuracy ${(100 * table.accuracy).toFixed(1)}%`);
        return table;
      };
      const passkey = retrieval('passkey', settings.passkey);
      const needle = retrieval('needle', settings.needle);
      reports.push({
        label,
        checkpoint: loaded.dir,
        step: loaded.step,
        parameters: model.parameterCount(),
        trainingLength: loaded.trainingLength,
        trainedPositions: describePositions(loaded.trainedConfig),
        evaluatedPositions: describePositions(model.config),
        loss,
        passkey,
        needle,
        seconds: (Date.now() - started) / 1000,
      });
    } finally {
      model.dispose();
    }
  }
  return { version: 1, overrides: settings.overrides, device: settings.device, models: reports };
}
