import { readFileSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { setDefaultDevice } from '../../engine/registry.js';
import { loadModelForInference } from '../../inference/load.js';
import { MAX_CONTEXT_TOKENS, generate, kvCacheBytes } from '../../inference/generate.js';
import { UsageError, type Command } from '../command.js';
import { numberFlag, parseCommandArgs, usableDevice } from '../args.js';

const USAGE = `Usage: andromeda generate <checkpoint> [options]

Generates text from a trained model, streamed to stdout as it is produced. <checkpoint> is a
run directory (its latest checkpoint is used) or a checkpoints/step-NNNNNN directory.

Options:
  --prompt <text>          text to continue (default: empty: start a new document)
  --prompt-file <path>     continue the bytes of this file instead (used exactly, also
                           where they are not valid UTF-8)
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
  --ignore-eos             keep going past the end-of-document token
  -h, --help               show this help

Example:
  andromeda generate runs/quickstart --prompt "Call me Ishmael." --max-tokens 300`;

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate text from a checkpoint (KV cache, temperature, top-k, top-p, seed)',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseCommandArgs(
      args,
      {
        prompt: { type: 'string' },
        'prompt-file': { type: 'string' },
        'max-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-k': { type: 'string' },
        'top-p': { type: 'string' },
        seed: { type: 'string' },
        device: { type: 'string', default: 'auto' },
        tokenizer: { type: 'string' },
        'no-cache': { type: 'boolean', default: false },
        'ignore-eos': { type: 'boolean', default: false },
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
      const positions = prompt.length + 1 + maxTokens;
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
      const result = generate(loaded.model, loaded.family, loaded.tokenizer, prompt, {
        maxTokens,
        temperature,
        topK,
        topP,
        seed,
        cache: !values['no-cache'],
        stopAtEos: !values['ignore-eos'],
        // The exact bytes of each token, so output that is not valid UTF-8 reaches stdout unchanged.
        onToken: (id) => process.stdout.write(loaded.tokenizer.tokenBytes(id)),
      });
      process.stdout.write('\n');
      process.stderr.write(
        `[${result.ids.length} tokens in ${result.seconds.toFixed(2)}s (` +
          `${(result.ids.length / Math.max(result.seconds, 1e-9)).toFixed(1)} tokens/s), ` +
          `${result.stoppedBy === 'eos' ? 'stopped at end of document' : 'token budget reached'}` +
          `${result.usedCache ? ', KV cache' : ', no cache'}]\n`,
      );
    } finally {
      loaded.model.dispose();
    }
  },
};

function readPromptFile(path: string): Buffer {
  try {
    if (statSync(path).isDirectory()) throw new UsageError(`--prompt-file ${path} is a directory`);
    return readFileSync(path);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      `--prompt-file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

function formatGiB(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}
