import { resolveDevice, setDefaultDevice } from '../../engine/registry.js';
import { loadModelForInference } from '../../inference/load.js';
import { generate } from '../../inference/generate.js';
import { UsageError, type Command } from '../command.js';
import { deviceFlag, numberFlag, parseCommandArgs } from '../args.js';

const USAGE = `Usage: andromeda generate <checkpoint> [options]

Generates text from a trained model, streamed to stdout as it is produced. <checkpoint> is a
run directory (its latest checkpoint is used) or a checkpoints/step-NNNNNN directory.

Options:
  --prompt <text>          text to continue (default: empty: start a new document)
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
    const parsed = parseCommandArgs(args, {
      prompt: { type: 'string', default: '' },
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
    }, true);
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the checkpoint (a run directory or a checkpoint directory)' : `expected one checkpoint, got ${positionals.length} arguments: ${positionals.join(' ')}`);
    const maxTokens = numberFlag('max-tokens', values['max-tokens'], 200, (n) => Number.isInteger(n) && n >= 0, 'an integer ≥ 0');
    const temperature = numberFlag('temperature', values.temperature, 0.8, (n) => Number.isFinite(n) && n >= 0, 'a number ≥ 0');
    const topK = numberFlag('top-k', values['top-k'], 40, (n) => Number.isInteger(n) && n >= 0, 'an integer ≥ 0');
    const topP = numberFlag('top-p', values['top-p'], 0.95, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
    const seed = numberFlag('seed', values.seed, 0, (n) => Number.isInteger(n), 'an integer');
    const device = resolveDevice(deviceFlag(values.device));
    setDefaultDevice(device);
    const loaded = await loadModelForInference(positionals[0], device, values.tokenizer);
    try {
      process.stderr.write(`loaded ${loaded.dir} (step ${loaded.step}, vocab ${loaded.tokenizer.vocabSize}, ${device})\n`);
      const prompt = values.prompt ?? '';
      process.stdout.write(prompt);
      const result = generate(loaded.model, loaded.family, loaded.tokenizer, prompt, {
        maxTokens, temperature, topK, topP, seed,
        cache: !values['no-cache'],
        stopAtEos: !values['ignore-eos'],
        onText: (text) => process.stdout.write(text),
      });
      process.stdout.write('\n');
      process.stderr.write(`[${result.ids.length} tokens in ${result.seconds.toFixed(2)}s (${(result.ids.length / Math.max(result.seconds, 1e-9)).toFixed(1)} tokens/s), ${result.stoppedBy === 'eos' ? 'stopped at end of document' : 'token budget reached'}${result.usedCache ? ', KV cache' : ', no cache'}]\n`);
    } finally {
      loaded.model.dispose();
    }
  },
};
