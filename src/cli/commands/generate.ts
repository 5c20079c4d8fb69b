import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { setDefaultDevice } from '../../engine/registry.js';
import { loadDraftModel, loadModelForInference, type LoadedModel } from '../../inference/load.js';
import { MAX_CONTEXT_TOKENS, generate, kvCacheBytes } from '../../inference/generate.js';
import {
  InferenceEngine,
  type EngineStats,
  MAX_DRAFT_TOKENS,
  type GenerationParams,
  type GenerationResult,
  type SpeculativeStats,
} from '../../inference/engine.js';
import type { TokenEvent } from '../../inference/sequence.js';
import { hasPagedForward, kvCacheBytesPerBlock, pagedCacheBytesPerBlock } from '../../inference/runners.js';
import { speculativeGenerate } from '../../inference/speculative.js';
import { StopTextFilter } from '../../inference/stop-text.js';
import { unwrapAndromeda } from '../../train/andromeda-adapter.js';
import type { Andromeda } from '../../model/andromeda.js';
import { PromptsFileError, parsePromptsFile, type PromptEntry } from '../../inference/prompts-file.js';
import { UsageError, type Command } from '../command.js';
import { isPositiveInteger, numberFlag, parseCommandArgs, positiveIntegerFlag, usableDevice } from '../args.js';
import { readBoundedFile, readBoundedText, TEXT_FILE_LIMIT, UnreadableFileError } from '../../io/bounded-read.js';

/** How the engine keeps the model's keys and values, as the summary line says it. */
const KV_CACHE_LABELS: Record<EngineStats['kvCache'], string> = {
  paged: 'paged KV cache',
  'per-sequence': 'KV cache per sequence',
  none: 'recomputed each step',
};

const USAGE = `Usage: andromeda generate <checkpoint> [options]

Generates text from a trained model, streamed to stdout as it is produced. <checkpoint> is a
run directory (its latest checkpoint is used) or a checkpoints/step-NNNNNN directory.

With --prompts, runs many prompts at once through the inference engine (continuous batching
over a paged KV cache) and writes one JSON line per prompt to stdout, in the file's order:
  {"index", "id"?, "text", "finishReason", "usage": {"promptTokens", "completionTokens"},
   "logprobs"? (when asked), "error"? (when it failed)}

Options:
  --prompt <text>          text to continue (default: empty: start a new document)
  --prompt-file <path>     continue the bytes of this file instead (used exactly, also
                           where they are not valid UTF-8)
  --prompts <path>         many prompts: one per line, or for a .jsonl/.ndjson file one JSON
                           object per line: {"prompt": "...", "id": any, and any of maxTokens,
                           temperature, topK, topP, minP, repetitionPenalty, frequencyPenalty,
                           presencePenalty, seed, stop, stopTokenIds, ignoreEos, logprobs,
                           topLogprobs, timeoutMs} (these override the flags); blank lines skipped
  --stop <text>            end a generation before this text (repeatable; not written)
  --min-p <p>              drop tokens below p × the most likely one's probability (default: 0)
  --max-batch <n>          with --prompts: most prompts generating at once (default: 64)
  --token-budget <n>       with --prompts: most tokens per model step; longer prompts are
                           prefilled in chunks (default: 512)
  --block-size <n>         positions per KV-cache block, a power of two ≤ 256 (default: 32)
  --kv-memory <GiB>        with --prompts: most memory for the KV-cache pool (default: what all
                           prompts need at once, up to a quarter of this machine's memory)
  --max-tokens <n>         most tokens to generate (default: 200)
  --temperature <x>        0 = greedy; higher = more random (default: 0.8)
  --top-k <n>              sample among the k most likely tokens, 0 = all (default: 40)
  --top-p <p>              sample among the most likely tokens holding probability p,
                           1 = all (default: 0.95)
  --seed <n>               sampling seed; the same seed gives the same text (default: 0)
  --device <d>             auto | cpu | cuda | cuda:N (default: auto)
  --tokenizer <spec>       tokenizer.json path or byte, for checkpoints without one
                           (e.g. from "andromeda convert"); default: the checkpoint's
  --no-cache               recompute the whole sequence each step instead of the KV cache
                           (one prompt only)
  --ignore-eos             keep going past the end-of-document token
  --draft <checkpoint>     speculative decoding: this smaller model, with the same tokenizer,
                           proposes tokens that the model verifies several at a time; the
                           output is the model's own (identical under greedy, the same
                           distribution when sampling). Not with --min-p or --no-cache. One
                           prompt: the text is written when generation ends; with --prompts,
                           prompts asking for logprobs or penalties are sampled as usual
  --draft-tokens <k>       with --draft: tokens proposed per step, 1 to ${MAX_DRAFT_TOKENS} (default: 4)
  -h, --help               show this help

Examples:
  andromeda generate runs/quickstart --prompt "Call me Ishmael." --max-tokens 300
  andromeda generate runs/quickstart --prompts questions.jsonl --temperature 0 > answers.jsonl
  andromeda generate runs/big --draft runs/small --draft-tokens 4 --prompt "Once" --temperature 0`;

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate text from a checkpoint: one prompt, or many batched (KV cache, sampling, seed)',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseCommandArgs(
      args,
      {
        prompt: { type: 'string' },
        'prompt-file': { type: 'string' },
        prompts: { type: 'string' },
        stop: { type: 'string', multiple: true },
        'min-p': { type: 'string' },
        'max-batch': { type: 'string' },
        'token-budget': { type: 'string' },
        'block-size': { type: 'string' },
        'kv-memory': { type: 'string' },
        'max-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-k': { type: 'string' },
        'top-p': { type: 'string' },
        seed: { type: 'string' },
        device: { type: 'string', default: 'auto' },
        tokenizer: { type: 'string' },
        'no-cache': { type: 'boolean', default: false },
        'ignore-eos': { type: 'boolean', default: false },
        draft: { type: 'string' },
        'draft-tokens': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    const { values, positionals } = parsed;
    if (positionals.length !== 1)
      throw new UsageError(
        positionals.length === 0
          ? 'give the checkpoint (a run directory or a checkpoint directory)'
          : `expected one checkpoint, got ${positionals.length} arguments: ${positionals.join(' ')}`,
      );
    const maxTokens = numberFlag(
      'max-tokens',
      values['max-tokens'],
      200,
      (n) => Number.isInteger(n) && n >= 0 && n < MAX_CONTEXT_TOKENS,
      `an integer from 0 to ${MAX_CONTEXT_TOKENS - 1}`,
    );
    const temperature = numberFlag(
      'temperature',
      values.temperature,
      0.8,
      (n) => Number.isFinite(n) && n >= 0,
      'a number ≥ 0',
    );
    const topK = numberFlag('top-k', values['top-k'], 40, (n) => Number.isInteger(n) && n >= 0, 'an integer ≥ 0');
    const topP = numberFlag('top-p', values['top-p'], 0.95, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
    const seed = numberFlag('seed', values.seed, 0, (n) => Number.isInteger(n), 'an integer');
    const minP = numberFlag('min-p', values['min-p'], 0, (n) => n >= 0 && n <= 1, 'a number in [0, 1]');
    const stop = values.stop ?? [];
    if (stop.some((t) => t === '')) throw new UsageError('--stop must not be empty');
    const blockSize = numberFlag(
      'block-size',
      values['block-size'],
      32,
      (n) => isPositiveInteger(n) && n <= 256 && (n & (n - 1)) === 0,
      'a power of two from 1 to 256',
    );
    const sampling: GenerationParams = {
      maxTokens,
      temperature,
      topK,
      topP,
      minP,
      seed,
      ignoreEos: values['ignore-eos'],
    };
    if (stop.length > 0) sampling.stop = stop;
    const draftTokens = draftTokensFlag(values, { maxTokens, minP });
    if (values.prompts !== undefined) {
      for (const flag of ['prompt', 'prompt-file'] as const)
        if (values[flag] !== undefined) throw new UsageError(`give --prompts or --${flag}, not both`);
      if (values['no-cache']) throw new UsageError('--no-cache applies to a single prompt, not to --prompts');
      const maxBatch = positiveIntegerFlag('max-batch', values['max-batch'], 64);
      // Each running prompt scores its draft tokens after its own in every step.
      const rowsPerPrompt = values.draft === undefined ? 1 : draftTokens + 1;
      const batch = {
        maxBatch,
        tokenBudget: positiveIntegerFlag(
          'token-budget',
          values['token-budget'],
          Math.max(512, maxBatch * rowsPerPrompt),
        ),
        blockSize,
        kvMemoryBytes:
          values['kv-memory'] === undefined
            ? totalmem() / 4
            : numberFlag(
                'kv-memory',
                values['kv-memory'],
                0,
                (n) => Number.isFinite(n) && n > 0,
                'a number of GiB > 0',
              ) *
              2 ** 30,
      };
      if (batch.tokenBudget < batch.maxBatch * rowsPerPrompt)
        throw new UsageError(
          values.draft === undefined
            ? `--token-budget ${batch.tokenBudget} must be at least --max-batch ${batch.maxBatch} (every running ` +
                `prompt decodes a token in each step)`
            : `--token-budget ${batch.tokenBudget} must be at least --max-batch ${batch.maxBatch} × ` +
                `(--draft-tokens ${draftTokens} + 1) = ${batch.maxBatch * rowsPerPrompt} (every running prompt ` +
                `verifies its draft tokens in each step)`,
        );
      const entries = readPromptsFile(values.prompts);
      const device = usableDevice(values.device);
      setDefaultDevice(device);
      const loaded = await loadModelForInference(positionals[0], device, values.tokenizer);
      let draft: LoadedModel | null = null;
      try {
        process.stderr.write(
          `loaded ${loaded.dir} (step ${loaded.step}, vocab ${loaded.tokenizer.vocabSize}, ${device}); ` +
            `${entries.length} prompts\n`,
        );
        if (values.draft !== undefined) {
          draft = await loadDraftModel(values.draft, loaded, device, values.tokenizer);
          process.stderr.write(`draft ${draft.dir} (step ${draft.step}), proposing ${draftTokens} per step\n`);
        }
        await generateMany(loaded, entries, sampling, {
          ...batch,
          draft: draft ? { model: draft.model, tokens: draftTokens } : undefined,
        });
      } finally {
        draft?.model.dispose();
        loaded.model.dispose();
      }
      return;
    }
    for (const flag of ['max-batch', 'token-budget', 'kv-memory'] as const)
      if (values[flag] !== undefined) throw new UsageError(`--${flag} applies to --prompts only`);
    if (values.prompt !== undefined && values['prompt-file'] !== undefined)
      throw new UsageError('give --prompt or --prompt-file, not both');
    const promptBytes =
      values['prompt-file'] === undefined
        ? Buffer.from(values.prompt ?? '', 'utf8')
        : readPromptFile(values['prompt-file']);
    const device = usableDevice(values.device);
    setDefaultDevice(device);
    const loaded = await loadModelForInference(positionals[0], device, values.tokenizer);
    try {
      process.stderr.write(
        `loaded ${loaded.dir} (step ${loaded.step}, vocab ${loaded.tokenizer.vocabSize}, ${device})\n`,
      );
      const prompt = loaded.tokenizer.encodeBytes(promptBytes);
      // A speculative step may verify draftTokens positions past the last generated token.
      const positions = prompt.length + maxTokens + (values.draft === undefined ? 1 : draftTokens);
      if (positions > MAX_CONTEXT_TOKENS) {
        throw new UsageError(
          `--max-tokens ${maxTokens} with a prompt of ${prompt.length} tokens exceeds ` +
            `the ${MAX_CONTEXT_TOKENS} positions token ids can address`,
        );
      }
      const cacheBytes = values['no-cache'] ? null : kvCacheBytes(loaded.config, positions);
      if (device === 'cpu' && cacheBytes !== null && cacheBytes > totalmem()) {
        throw new UsageError(
          `--max-tokens ${maxTokens}: the KV cache for ${positions} positions would ` +
            `take ${formatGiB(cacheBytes)}, more than this machine's ${formatGiB(totalmem())} of memory; lower ` +
            `--max-tokens (or pass --no-cache to recompute the sequence every step)`,
        );
      }
      process.stdout.write(promptBytes);
      // The exact bytes of each token, so output that is not valid UTF-8 reaches stdout unchanged.
      const writeToken = (id: number): void => void process.stdout.write(loaded.tokenizer.tokenBytes(id));
      const started = Date.now();
      let summary: { tokens: number; reason: string; path: string };
      if (values.draft !== undefined) {
        summary = await generateOneSpeculatively(loaded, values.draft, values.tokenizer, device, prompt, {
          sampling,
          draftTokens,
          blockSize,
          writeToken,
          writeText: (text) => void process.stdout.write(text),
        });
      } else if ((!values['no-cache'] && hasPagedForward(loaded.model)) || stop.length > 0 || minP > 0) {
        // The engine where it caches (paged forward) or where only it can follow the request (stop strings, min-p).
        summary = await generateOneWithEngine(loaded, prompt, sampling, blockSize, writeToken);
      } else {
        const result = generate(loaded.model, loaded.family, loaded.tokenizer, prompt, {
          maxTokens,
          temperature,
          topK,
          topP,
          seed,
          cache: !values['no-cache'],
          stopAtEos: !values['ignore-eos'],
          onToken: writeToken,
        });
        summary = {
          tokens: result.ids.length,
          reason: result.stoppedBy === 'eos' ? 'stopped at end of document' : 'token budget reached',
          path: result.usedCache ? 'KV cache' : 'no cache',
        };
      }
      const seconds = (Date.now() - started) / 1000;
      process.stdout.write('\n');
      process.stderr.write(
        `[${summary.tokens} tokens in ${seconds.toFixed(2)}s (` +
          `${(summary.tokens / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s), ${summary.reason}, ${summary.path}]\n`,
      );
    } finally {
      loaded.model.dispose();
    }
  },
};

/** One prompt through the engine (a pool sized for it alone), its tokens written as they come. */
async function generateOneWithEngine(
  loaded: LoadedModel,
  prompt: Int32Array,
  params: GenerationParams,
  blockSize: number,
  writeToken: (id: number) => void,
): Promise<{ tokens: number; reason: string; path: string }> {
  const positions = prompt.length + 1 + (params.maxTokens ?? 0);
  const engine = new InferenceEngine(loaded.model, loaded.tokenizer, {
    blockSize,
    numBlocks: Math.ceil(positions / blockSize),
    maxBatch: 1,
  });
  try {
    const stream = engine.submit(prompt, params);
    const stopIds = params.ignoreEos ? null : loaded.tokenizer.eosId;
    // Stop strings are cut from the decoded text, so with them the text is written rather than token bytes.
    const hasStops = params.stop !== undefined && params.stop.length > 0;
    for await (const event of stream) {
      if (hasStops) process.stdout.write(event.text);
      else if (event.tokenId !== stopIds) writeToken(event.tokenId);
    }
    const result = await stream.result;
    if (result.error) throw result.error;
    const generated = result.tokenIds.filter((id) => id !== stopIds).length;
    const reason =
      result.finishReason === 'length'
        ? 'token budget reached'
        : result.tokenIds.at(-1) === stopIds
          ? 'stopped at end of document'
          : 'stopped at a stop string';
    return { tokens: generated, reason, path: KV_CACHE_LABELS[engine.stats().kvCache] };
  } finally {
    await engine.close();
  }
}

/**
 * --draft-tokens, checked with the flags speculative decoding cannot follow (before anything loads); the
 * default where there is no --draft, which then goes unused.
 */
function draftTokensFlag(
  values: { draft?: string; 'draft-tokens'?: string; 'no-cache'?: boolean },
  request: { maxTokens: number; minP: number },
): number {
  const fallback = 4;
  if (values.draft === undefined) {
    if (values['draft-tokens'] !== undefined) throw new UsageError('--draft-tokens applies with --draft only');
    return fallback;
  }
  const draftTokens = numberFlag(
    'draft-tokens',
    values['draft-tokens'],
    fallback,
    (n) => Number.isInteger(n) && n >= 1 && n <= MAX_DRAFT_TOKENS,
    `an integer from 1 to ${MAX_DRAFT_TOKENS}`,
  );
  // min-p is not part of speculative decoding's acceptance scheme.
  if (request.minP > 0) throw new UsageError('--draft cannot be combined with --min-p');
  if (values['no-cache']) throw new UsageError('--draft decodes over KV caches: it cannot be combined with --no-cache');
  if (request.maxTokens < 1) throw new UsageError('--draft needs --max-tokens of at least 1');
  if (!existsSync(values.draft)) throw new UsageError(`--draft ${values.draft}: no such checkpoint`);
  return draftTokens;
}

/** The Andromeda model under `model` when it decodes over a paged KV cache, which speculative decoding needs. */
function pagedAndromedaModel(model: LoadedModel['model']): Andromeda | null {
  return hasPagedForward(model) ? unwrapAndromeda(model) : null;
}

interface SpeculativeSettings {
  sampling: GenerationParams;
  draftTokens: number;
  blockSize: number;
  writeToken: (id: number) => void;
  writeText: (text: string) => void;
}

/**
 * One prompt by speculative decoding: the checkpoint at `draftPath` proposes, the loaded model verifies. The
 * tokens are written when generation ends; the summary reports how many proposals the target accepted.
 */
async function generateOneSpeculatively(
  loaded: LoadedModel,
  draftPath: string,
  tokenizerSpec: string | undefined,
  device: string,
  prompt: Int32Array,
  { sampling, draftTokens, blockSize, writeToken, writeText }: SpeculativeSettings,
): Promise<{ tokens: number; reason: string; path: string }> {
  const target = pagedAndromedaModel(loaded.model);
  if (!target)
    throw new Error(
      `--draft: the model of ${loaded.dir} does not decode over a paged KV cache, which speculative decoding needs`,
    );
  const drafted = await loadDraftModel(draftPath, loaded, device, tokenizerSpec);
  try {
    const draft = pagedAndromedaModel(drafted.model);
    if (!draft)
      throw new Error(
        `--draft ${draftPath}: its model does not decode over a paged KV cache, which speculative decoding needs`,
      );
    if (draft.config.vocabSize !== target.config.vocabSize)
      throw new Error(
        `--draft ${draftPath}: its vocabulary (${draft.config.vocabSize} tokens) differs from the model's ` +
          `(${target.config.vocabSize})`,
      );
    process.stderr.write(`draft ${drafted.dir} (step ${drafted.step}), proposing ${draftTokens} per step\n`);
    const eos = loaded.tokenizer.eosId;
    // The document starts after an end-of-document token, as in the engine and the uncached generator.
    const context = Int32Array.of(eos, ...prompt);
    const result = speculativeGenerate(target, draft, context, {
      draftTokens,
      maxTokens: sampling.maxTokens!,
      temperature: sampling.temperature,
      topK: sampling.topK,
      topP: sampling.topP,
      seed: sampling.seed,
      blockSize,
      vocab: loaded.tokenizer.vocabSize,
      stopIds: sampling.ignoreEos ? [] : [eos],
    });
    // Stop strings are matched on the decoded text as the engine does; the tokens after one were generated
    // but are not written.
    const stops = typeof sampling.stop === 'string' ? [sampling.stop] : (sampling.stop ?? []);
    const stopText = stops.length > 0 ? new StopTextFilter(loaded.tokenizer, stops) : null;
    let written = 0;
    let stoppedAtText = false;
    for (const id of result.tokens) {
      if (!sampling.ignoreEos && id === eos) break;
      written++;
      if (!stopText) {
        writeToken(id);
        continue;
      }
      const piece = stopText.push(id);
      writeText(piece.text);
      if ((stoppedAtText = piece.stopped)) break;
    }
    if (stopText && !stoppedAtText) writeText(stopText.finish().text);
    const rate = result.proposed > 0 ? (100 * result.accepted) / result.proposed : 0;
    return {
      tokens: written,
      reason: stoppedAtText
        ? 'stopped at a stop string'
        : result.finishReason === 'stop'
          ? 'stopped at end of document'
          : 'token budget reached',
      path:
        `speculative: ${result.accepted}/${result.proposed} draft tokens accepted (${rate.toFixed(1)}%), ` +
        `${result.steps} target steps (${(result.tokens.length / result.steps).toFixed(2)} tokens per step)`,
    };
  } finally {
    drafted.model.dispose();
  }
}

interface BatchSettings {
  maxBatch: number;
  tokenBudget: number;
  blockSize: number;
  kvMemoryBytes: number;
  /** Speculative decoding: the draft model and its proposals per step. */
  draft?: { model: LoadedModel['model']; tokens: number };
}

/**
 * Every prompt of the file through one engine; results are written as JSON lines in the file's order
 * (each as soon as it and every earlier one have finished).
 */
async function generateMany(
  loaded: LoadedModel,
  entries: readonly PromptEntry[],
  defaults: GenerationParams,
  settings: BatchSettings,
): Promise<void> {
  const { tokenizer, model } = loaded;
  const requests = entries.map((entry) => ({ entry, params: { ...defaults, ...entry.params } }));
  // A pool for every prompt at once, when it fits the memory cap; otherwise the scheduler queues and preempts.
  const needed = requests.reduce(
    (blocks, { entry, params }) =>
      blocks + Math.ceil((tokenizer.encode(entry.prompt).length + 1 + (params.maxTokens ?? 0)) / settings.blockSize),
    0,
  );
  const targetBytes = kvCacheBytesPerBlock(model, settings.blockSize);
  // The draft's cache shares the block tables: each block holds both models' positions.
  const draftBytes = settings.draft ? (pagedCacheBytesPerBlock(settings.draft.model, settings.blockSize) ?? 0) : 0;
  const bytesPerBlock = targetBytes === null ? null : targetBytes + draftBytes;
  const affordable = bytesPerBlock === null ? needed : Math.floor(settings.kvMemoryBytes / bytesPerBlock);
  if (affordable < 1)
    throw new UsageError(
      `--kv-memory ${(settings.kvMemoryBytes / 2 ** 30).toFixed(3)} GiB holds not one KV-cache block ` +
        `(${bytesPerBlock} bytes each)`,
    );
  const engine = new InferenceEngine(model, tokenizer, {
    blockSize: settings.blockSize,
    numBlocks: Math.min(needed, affordable),
    maxBatch: settings.maxBatch,
    tokenBudget: settings.tokenBudget,
    maxQueue: entries.length,
    draft: settings.draft,
  });
  const started = Date.now();
  try {
    const pending = requests.map(({ entry, params }) => {
      const stream = engine.submit(entry.prompt, params);
      const logprobs: TokenEvent[] = [];
      const wantsLogprobs = params.logprobs || (params.topLogprobs ?? 0) > 0;
      const collected = (async () => {
        for await (const event of stream) if (wantsLogprobs) logprobs.push(event);
        return stream.result;
      })().catch(() => stream.result);
      return collected.then((result) => resultLine(entry, result, wantsLogprobs ? logprobs : null));
    });
    let generated = 0;
    for (const [index, line] of pending.entries()) {
      const { json, tokens } = await line;
      generated += tokens;
      process.stdout.write(JSON.stringify({ index, ...json }) + '\n');
    }
    const seconds = (Date.now() - started) / 1000;
    const stats = engine.stats();
    process.stderr.write(
      `[${entries.length} prompts, ${generated} tokens in ${seconds.toFixed(2)}s ` +
        `(${(generated / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s); ${stats.preemptions} preemptions, ` +
        `${stats.prefixCache.hitTokens} prompt tokens shared; ${KV_CACHE_LABELS[stats.kvCache]}` +
        (stats.speculative ? `; ${speculativeSummary(stats.speculative, stats.steps)}` : '') +
        ']\n',
    );
  } finally {
    await engine.close();
  }
}

function speculativeSummary(s: SpeculativeStats, steps: number): string {
  const rate = s.proposed > 0 ? (100 * s.accepted) / s.proposed : 0;
  return `speculative: ${s.accepted}/${s.proposed} draft tokens accepted (${rate.toFixed(1)}%) in ${steps} steps`;
}

function resultLine(
  entry: PromptEntry,
  result: GenerationResult,
  logprobs: TokenEvent[] | null,
): { json: Record<string, unknown>; tokens: number } {
  const json: Record<string, unknown> = {};
  if (entry.id !== undefined) json.id = entry.id;
  json.text = result.text;
  json.finishReason = result.finishReason;
  json.usage = result.usage;
  if (logprobs)
    json.logprobs = logprobs.map(({ tokenId, logprob, topLogprobs }) => ({ tokenId, logprob, topLogprobs }));
  if (result.error) json.error = result.error.message;
  return { json, tokens: result.usage.completionTokens };
}

function readPromptsFile(path: string): PromptEntry[] {
  let text: string;
  try {
    text = readBoundedText(path);
  } catch (e) {
    if (e instanceof UnreadableFileError) throw new UsageError(`--prompts ${path} ${e.reason}`);
    throw new UsageError(
      `--prompts ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  try {
    return parsePromptsFile(path, text);
  } catch (e) {
    if (e instanceof PromptsFileError) throw new UsageError(`--prompts ${e.message}`);
    throw e;
  }
}

function readPromptFile(path: string): Buffer {
  try {
    return readBoundedFile(path, TEXT_FILE_LIMIT);
  } catch (e) {
    if (e instanceof UnreadableFileError) throw new UsageError(`--prompt-file ${path} ${e.reason}`);
    throw new UsageError(
      `--prompt-file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

function formatGiB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}
