import { resolveDevice, setDefaultDevice } from '../../engine/registry.js';
import { DEFAULT_CONFIG, type TrainConfig } from '../../train/config.js';
import { generate } from '../../inference/generate.js';
import { UsageError, type Command } from '../command.js';
import { deviceFlag, numberFlag, parseCommandArgs, positiveIntegerFlag } from '../args.js';
import { runTraining, summarize } from './train.js';

/**
 * The settings of the quickstart run. CPU: the `tiny` preset sized to finish well inside 10
 * minutes on 2 cores; GPU: the larger byte-level `small` preset for longer.
 */
export function quickstartConfig(device: string): TrainConfig {
  const common = {
    ...DEFAULT_CONFIG,
    tokenizer: 'byte',
    device,
    out: 'runs/quickstart',
    seed: 0,
    weightDecay: 0.1,
    clip: 1,
    segments: true,
  };
  if (device === 'cpu') {
    return {
      ...common,
      preset: 'tiny',
      steps: 1200,
      batchSize: 16,
      seqLen: 128,
      lr: 3e-3,
      warmup: 50,
      evalEvery: 200,
      evalTokens: 8192,
      finalEvalTokens: 32768,
      checkpointEvery: 200,
      maxMinutes: 7,
    };
  }
  return {
    ...common,
    preset: 'small',
    steps: 6000,
    batchSize: 32,
    seqLen: 256,
    lr: 2e-3,
    warmup: 200,
    evalEvery: 500,
    evalTokens: 65536,
    finalEvalTokens: 0,
    checkpointEvery: 1000,
    maxMinutes: 8,
  };
}

const USAGE = `Usage: andromeda quickstart [options]

Trains a small Andromeda model on the embedded default corpus (public-domain prose and
TypeScript declarations, byte-level tokens), evaluates it on the held-out split against the
unigram baseline, saves a checkpoint and prints a generated sample. On a CPU it trains the
\`tiny\` preset (about 5–8 minutes on 2 cores); with a CUDA GPU, the larger \`small\` preset.

Options:
  --out <dir>          run directory (default: runs/quickstart; an earlier quickstart there is replaced)
  --device <d>         auto | cpu | cuda | cuda:N (default: auto)
  --steps <n>          override the number of training steps
  --max-minutes <x>    stop training after this long (default: 7 on CPU, 8 on GPU)
  --prompt <text>      start of the generated sample (default: "The ")
  --quiet              no progress bar
  -h, --help           show this help

Afterwards:
  andromeda generate runs/quickstart --prompt "Call me" --max-tokens 300
  open runs/quickstart/plot.html`;

export const quickstartCommand: Command = {
  name: 'quickstart',
  summary: 'train a tiny model on the bundled corpus, report held-out loss vs the unigram baseline, generate',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseCommandArgs(args, {
      out: { type: 'string' },
      device: { type: 'string', default: 'auto' },
      steps: { type: 'string' },
      'max-minutes': { type: 'string' },
      prompt: { type: 'string', default: 'The ' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    });
    const { values } = parsed;
    const started = Date.now();
    const device = resolveDevice(deviceFlag(values.device));
    const config = quickstartConfig(device);
    if (values.out) config.out = values.out;
    if (values.steps !== undefined) {
      const steps = positiveIntegerFlag('steps', values.steps, config.steps);
      config.steps = steps;
      config.warmup = Math.min(config.warmup, Math.floor(steps / 10));
    }
    config.maxMinutes = numberFlag(
      'max-minutes',
      values['max-minutes'],
      config.maxMinutes,
      (m) => m >= 0,
      'a number ≥ 0',
    );
    process.stderr.write(
      `Andromeda quickstart: ${config.preset} preset on ${device}, default ` +
        `corpus, ${config.steps} steps of ${config.batchSize}×${config.seqLen} byte tokens (at ` +
        `most ${config.maxMinutes} min) → ${config.out}\n`,
    );
    const result = await runTraining({ config, explicit: {}, resume: false, overwrite: true, quiet: values.quiet! });
    try {
      setDefaultDevice(device);
      process.stderr.write(summarize(result) + '\n');
      const final = result.finalEval;
      if (final) {
        const gap = final.unigramLoss - final.loss;
        process.stdout.write(
          `\nheld-out loss:     ${final.loss.toFixed(4)} nats/token  (${final.bitsPerByte.toFixed(3)} bits/byte)\n` +
            `unigram baseline:  ${final.unigramLoss.toFixed(4)} nats/token  (${final.unigramBitsPerByte.toFixed(3)}` +
            ` bits/byte)  on the same ${final.tokens} held-out tokens\n` +
            `${
              gap > 0
                ? `the model is ${gap.toFixed(3)} nats/token (${((gap / final.unigramLoss) * 100).toFixed(0)}` +
                  `%) below the unigram baseline`
                : 'the model did NOT beat the unigram baseline'
            }\n`,
        );
      }
      process.stdout.write(`\nsample (temperature 0.8, top-k 40, seed 0):\n\n`);
      const prompt = values.prompt!;
      process.stdout.write(prompt);
      generate(result.model, result.family, result.tokenizer, prompt, {
        maxTokens: 300,
        temperature: 0.8,
        topK: 40,
        topP: 0.95,
        seed: 0,
        onText: (t) => process.stdout.write(t),
      });
      process.stdout.write('\n\n');
      process.stdout.write(
        `checkpoint: ${result.checkpointDir}\nplot:       ${result.out}/plot.html\ntotal ` +
          `time: ${((Date.now() - started) / 60000).toFixed(1)} min\n`,
      );
      process.stdout.write(
        `more text:  node dist/src/cli/main.js generate ${config.out} --prompt "Call me" --max-tokens 300\n`,
      );
    } finally {
      result.model.dispose();
    }
  },
};
