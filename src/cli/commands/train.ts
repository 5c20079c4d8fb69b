import '../../train/andromeda-adapter.js';
import {
  CONFIG_KINDS,
  ConfigError,
  DEFAULT_CONFIG,
  flagName,
  parseFlagValue,
  readConfigFile,
  validateConfig,
  type TrainConfig,
} from '../../train/config.js';
import { train, type TrainOptions, type TrainResult } from '../../train/trainer.js';
import { UsageError, type Command } from '../command.js';
import { parseCommandArgs } from '../args.js';

const USAGE = `Usage: andromeda train [options]

Trains an Andromeda model, writing checkpoints, a JSONL metrics log and an HTML plot to --out.
With no --data and no inputs, trains on the embedded default corpus (prose + TypeScript).

Data:
  --data <dir>             tokenized dataset from \`andromeda tokenize\`; repeat for a mixture,
                           optionally named and weighted: --data books=data/books@3
  [inputs...]              or text files / directories / JSONL to tokenize on the fly
                           (into <out>/data; reused on later runs)
  --tokenizer <spec>       byte (default), bpe:<vocab size>, or a tokenizer.json, for inputs
                           tokenized on the fly and for the default corpus
  --jsonl-field <name>     JSONL text field (default: text)
  --val-fraction <f>       held-out fraction when tokenizing on the fly (default: 0.01)

Model and optimisation:
  --preset <name>          tiny | small | orca | andromeda-3b (default: tiny)
  --model <json>           overrides of the preset, e.g. '{"depth": 3}'
  --steps <n>              optimizer steps (default: 1000)
  --batch-size <n>         sequences per micro-batch (default: 8)
  --seq-len <n>            tokens per sequence (default: 256)
  --grad-accum <n>         micro-batches per step (default: 1)
  --lr <x>                 peak learning rate (default: 0.001)
  --warmup <n>             linear warmup steps (default: 100)
  --min-lr-ratio <f>       cosine floor as a fraction of the peak (default: 0.04)
  --cooldown <n>           final steps decaying linearly to zero (default: 0)
  --weight-decay <x>       AdamW weight decay on matrices; none on norms, biases,
                           embeddings (default: 0.1)
  --beta1 <x> --beta2 <x> --eps <x>   AdamW (defaults: 0.9, 0.95, 1e-8)
  --optimizer <name>       adamw (float32 moments) or adamw8bit (moments in 8 bits,
                           block-wise quantized: ~2 bytes of state per parameter, not 8)
                           (default: adamw)
  --clip <x>               global gradient-norm clip, 0 = off (default: 1)
  --segments <bool>        reset attention/positions at document boundaries (default: true)
  --max-bad-steps <n>      stop after this many NaN/inf steps in a row (default: 5)
  --activation-checkpointing <bool>
                           recompute each block in the backward pass instead of keeping
                           its activations: less memory, ~1/3 more compute (default: false)

Evaluation, checkpoints, run:
  --eval-every <n>         held-out evaluation every n steps, 0 = only at the end (default: 100)
  --eval-tokens <n>        held-out tokens per periodic evaluation (default: 32768)
  --final-eval-tokens <n>  held-out tokens at the end, 0 = all (default: 0)
  --checkpoint-every <n>   checkpoint every n steps (and always at the end) (default: 100)
  --keep-checkpoints <n>   most recent checkpoints kept, 0 = all (default: 2)
  --out <dir>              run directory (default: runs/andromeda)
  --resume                 continue the run in --out from its newest intact checkpoint, exactly
                           (a damaged newer one is passed over, with a warning)
  --overwrite              start over in an --out that holds an earlier run
  --device <d>             auto | cpu | cuda | cuda:N (default: auto: CUDA when available)
  --dtype <t>              auto | float32 | bfloat16 activations; weights and optimizer
                           state stay float32 (default: auto)
  --seed <n>               initialisation and data order (default: 0)
  --max-minutes <x>        stop (with a checkpoint) after this long, 0 = no limit; the steps
                           it allows are planned from the speed of the first steps, and the
                           learning-rate schedule and ETA end there
  --config <file.json>     settings as JSON (keys as above in camelCase or kebab-case);
                           flags given on the command line override it
  --quiet                  no progress bar
  -h, --help               show this help

One trainer at a time per --out (a lock file names its PID). Ctrl-C or SIGTERM stops after the
current step and writes a checkpoint of it; a second signal waits for that checkpoint, a third
quits without it. Runs that cannot fit in memory, or whose held-out split is shorter than
--seq-len + 1, are refused before the first step.

Examples:
  andromeda train --steps 300 --out runs/first
  andromeda tokenize books/ --tokenizer bpe:4096 --out data/books
  andromeda train --data data/books --preset small --seq-len 512 --out runs/books
  andromeda train --out runs/books --resume`;

type FlagSpec = { type: 'string' | 'boolean'; multiple?: boolean; short?: string };

export interface ParsedTrainArgs {
  config: TrainConfig;
  /** Settings given explicitly (config file and flags). */
  explicit: Partial<TrainConfig>;
  resume: boolean;
  overwrite: boolean;
  quiet: boolean;
}

/** Defaults ← --config file ← flags; every value checked, errors name the flag. */
export function parseTrainArgs(args: string[], base: TrainConfig = DEFAULT_CONFIG): ParsedTrainArgs {
  const options: Record<string, FlagSpec> = {
    config: { type: 'string' },
    resume: { type: 'boolean' },
    overwrite: { type: 'boolean' },
    quiet: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  };
  for (const key of Object.keys(CONFIG_KINDS)) {
    if (key === 'inputs') continue;
    options[flagName(key)] = { type: 'string', ...(key === 'data' ? { multiple: true } : {}) };
  }
  const parsed = parseCommandArgs(args, options, true);
  const { values, positionals } = parsed as {
    values: Record<string, string | string[] | boolean | undefined>;
    positionals: string[];
  };
  try {
    const explicit: Partial<TrainConfig> = values.config ? readConfigFile(values.config as string) : {};
    for (const key of Object.keys(CONFIG_KINDS) as (keyof TrainConfig)[]) {
      if (key === 'inputs') continue;
      const raw = values[flagName(key)];
      if (raw === undefined) continue;
      if (key === 'data') (explicit as Record<string, unknown>).data = raw as string[];
      else (explicit as Record<string, unknown>)[key] = parseFlagValue(key, raw as string);
    }
    if (positionals.length > 0) explicit.inputs = positionals;
    const merged = { ...base, ...explicit };
    // A short run without an explicit warmup gets 10% of its steps instead of the default.
    if (explicit.warmup === undefined && merged.warmup + merged.cooldown > merged.steps)
      merged.warmup = Math.floor((merged.steps - merged.cooldown) / 10);
    const config = validateConfig(merged, 'train');
    return {
      config,
      explicit,
      resume: values.resume === true,
      overwrite: values.overwrite === true,
      quiet: values.quiet === true,
    };
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message.replace(/^train: /, ''));
    throw error;
  }
}

/** Test hooks passed through to the trainer (see TrainOptions). */
export type TrainingHooks = Pick<TrainOptions, 'skipFinalEval' | 'stepDelayMs' | 'onCheckpointFile'>;

/**
 * Runs training, stopping cleanly on SIGINT or SIGTERM: the first signal ends the run after the
 * current step with a checkpoint of that step. Later signals never interrupt a checkpoint being
 * written; a third one outside a save quits at once (exit 130), losing the steps since the last
 * checkpoint, for a step that does not finish.
 */
export async function runTraining(parsed: ParsedTrainArgs, hooks: TrainingHooks = {}): Promise<TrainResult> {
  const controller = new AbortController();
  let signals = 0;
  let savingStep: number | null = null;
  const onSignal = (name: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(
        `\n${name}: stopping after the current step with a checkpoint of it (again: wait; a third time: quit ` +
          `without it)\n`,
      );
      controller.abort();
    } else if (savingStep !== null) {
      process.stderr.write(`\n${name}: the checkpoint of step ${savingStep} is being written; waiting for it\n`);
    } else if (signals === 2) {
      process.stderr.write(
        `\n${name}: already stopping after the current step; once more to quit without its checkpoint\n`,
      );
    } else {
      process.stderr.write(`\n${name}: quitting without a checkpoint of the current step\n`);
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await train(parsed.config, {
      resume: parsed.resume,
      overwrite: parsed.overwrite,
      explicit: parsed.explicit,
      progress: !parsed.quiet,
      signal: controller.signal,
      onSaving: (saving, step) => {
        savingStep = saving ? step : null;
      },
      ...hooks,
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const STOP_REASONS: Record<TrainResult['stoppedBy'], string> = {
  steps: 'reaching --steps',
  time: '--max-minutes (the steps planned for it)',
  signal: 'a signal (resume with --resume)',
};

export function summarize(result: TrainResult): string {
  const lines = [
    `trained ${result.step - result.startStep} steps (${result.startStep} → ${result.step}) in ` +
      `${(result.trainSeconds / 60).toFixed(1)} min on ${result.device}; stopped by ${STOP_REASONS[result.stoppedBy]}`,
  ];
  if (result.finalEval) {
    const e = result.finalEval;
    lines.push(
      `held-out loss ${e.loss.toFixed(4)} nats/token (${e.bitsPerByte.toFixed(4)} bits/byte) vs unigram ` +
        `baseline ${e.unigramLoss.toFixed(4)} (${e.unigramBitsPerByte.toFixed(4)} bits/byte) on the ` +
        `same ${e.tokens} tokens`,
    );
  }
  lines.push(
    `checkpoint: ${result.checkpointDir}`,
    `metrics: ${result.out}/metrics.jsonl`,
    `plot: ${result.out}/plot.html`,
  );
  return lines.join('\n');
}

export const trainCommand: Command = {
  name: 'train',
  summary: 'train a model (default corpus, tokenized datasets, or text files) with checkpoints and resume',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseTrainArgs(args);
    const result = await runTraining(parsed);
    result.model.dispose();
    process.stderr.write(summarize(result) + '\n');
  },
};
