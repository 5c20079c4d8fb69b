import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { UsageError, type Command } from '../command.js';
import { checkOutputFile, numberFlag, parseCommandArgs, positiveIntegerFlag } from '../args.js';
import { isPresetName, PRESET_NAMES } from '../../model/presets.js';
import {
  buildOnlineModel,
  compressBytes,
  DEFAULT_MAX_STREAMS,
  engineIdentity,
  loadCheckpointModel,
  onlineModelSpec,
  type CodingModel,
} from '../../compress/index.js';

/** --online's defaults: a few streams, so the model takes many small steps (see bench/results/compress.md). */
export const ONLINE_DEFAULTS = {
  preset: 'tiny',
  seed: 0,
  lr: 1.25e-3,
  lrDecay: 3000,
  streams: 4,
  context: 64,
  overlap: 32,
} as const;

const USAGE = `Usage: andromeda compress <in> <out> (--model <checkpoint> | --online) [options]

Compresses any file losslessly with a byte-level language model: its next-byte probabilities
drive an arithmetic (range) coder. Decompress with \`andromeda decompress\`.

The file decodes with the same model on the CPU engine with the same SIMD kernels
(ANDROMEDA_CPU_ISA), at any thread count; the header records the model's SHA-256 and the engine,
and a mismatch is reported.

Model (one of):
  --model <checkpoint>   a trained byte-level checkpoint or run directory (offline mode)
  --online               start from a freshly initialised model and train it on each window
                         after coding it (no pretrained model needed; decoding retrains it)
Options:
  --preset <name>        online: model preset (default ${ONLINE_DEFAULTS.preset}; ${PRESET_NAMES.join(', ')})
  --seed <n>             online: initialisation seed (default ${ONLINE_DEFAULTS.seed})
  --lr <x>               online: AdamW learning rate (default ${ONLINE_DEFAULTS.lr})
  --lr-decay <n|off>     online: step k trains at lr / (1 + k/n) (default ${ONLINE_DEFAULTS.lrDecay}; off: constant)
  --context <n>          tokens of context (default ${ONLINE_DEFAULTS.context} with --online, else the model's maximum
                         sequence length)
  --overlap <n>          tokens kept when the context window is rebuilt (default ${ONLINE_DEFAULTS.overlap}
                         with --online, else context/2)
  --mix <on|off>         code bit by bit with the model's probabilities mixed into a context-mixing
                         predictor (hashed order-1–6 and word counters, a match model); default on
                         with --online (a fresh model learns slowly; the mix keeps what it knows),
                         off with --model (the code length is then the model's cross-entropy)
  --streams <n>          most parts of the input coded side by side, one batch row each
                         (default ${ONLINE_DEFAULTS.streams} with --online, ${DEFAULT_MAX_STREAMS} with --model);
                         more is faster, fewer compress better, online much better (the model
                         trains more often)
  -h, --help             show this help

Examples:
  andromeda compress notes.txt notes.andz --model runs/quickstart
  andromeda compress book.txt book.andz --online`;

export const compressCommand: Command = {
  name: 'compress',
  summary: 'compress a file losslessly with a language model driving an arithmetic coder',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        model: { type: 'string' },
        online: { type: 'boolean', default: false },
        preset: { type: 'string' },
        seed: { type: 'string' },
        lr: { type: 'string' },
        'lr-decay': { type: 'string' },
        context: { type: 'string' },
        overlap: { type: 'string' },
        streams: { type: 'string' },
        mix: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (positionals.length !== 2) throw new UsageError(`expected <in> <out>, got ${positionals.length} argument(s)`);
    const [input, output] = positionals as [string, string];
    if (values.online === (values.model !== undefined))
      throw new UsageError('give exactly one of --model <checkpoint> and --online');
    if (!values.online) {
      for (const flag of ['preset', 'seed', 'lr', 'lr-decay'] as const)
        if (values[flag] !== undefined) throw new UsageError(`--${flag} applies to --online only`);
    }
    const preset = values.preset ?? ONLINE_DEFAULTS.preset;
    if (!isPresetName(preset))
      throw new UsageError(`--preset must be one of ${PRESET_NAMES.join(', ')}, got ${preset}`);
    const seed = numberFlag(
      'seed',
      values.seed,
      ONLINE_DEFAULTS.seed,
      (n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff,
      'an integer from 0 to 2^32 − 1',
    );
    const lr = numberFlag('lr', values.lr, ONLINE_DEFAULTS.lr, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
    const lrDecaySteps =
      values['lr-decay'] === 'off'
        ? undefined
        : numberFlag(
            'lr-decay',
            values['lr-decay'],
            ONLINE_DEFAULTS.lrDecay,
            (n) => Number.isInteger(n) && n >= 1 && n <= 1e9,
            'an integer from 1 to 10^9 (steps) or off',
          );
    if (values.mix !== undefined && values.mix !== 'on' && values.mix !== 'off')
      throw new UsageError(`--mix must be on or off, got ${values.mix}`);
    const contextMixing = values.mix === undefined ? values.online : values.mix === 'on';
    const streams = positiveIntegerFlag(
      'streams',
      values.streams,
      values.online ? ONLINE_DEFAULTS.streams : DEFAULT_MAX_STREAMS,
    );
    const context =
      values.context !== undefined
        ? positiveIntegerFlag('context', values.context, 0)
        : values.online
          ? ONLINE_DEFAULTS.context
          : undefined;
    const overlap =
      values.overlap !== undefined
        ? positiveIntegerFlag('overlap', values.overlap, 0)
        : values.online && values.context === undefined
          ? ONLINE_DEFAULTS.overlap
          : undefined;
    if (!existsSync(input)) throw new UsageError(`<in> ${input} does not exist`);
    if (!statSync(input).isFile()) throw new UsageError(`<in> ${input} is not a file`);
    checkOutputFile('<out>', output, [{ what: 'input', path: input }]);
    if (values.model !== undefined && !existsSync(values.model))
      throw new UsageError(`--model ${values.model} does not exist`);

    const model: CodingModel = values.online
      ? buildOnlineModel(onlineModelSpec({ preset, seed, learningRate: lr, lrDecaySteps }))
      : await loadCheckpointModel(values.model!);
    try {
      const maxContext = model.model.config.maxSeqLen;
      if (context !== undefined && (context < 2 || context > maxContext))
        throw new UsageError(
          `--context must be from 2 to the model's maximum sequence length ${maxContext}, got ${context}`,
        );
      const effectiveContext = context ?? maxContext;
      if (overlap !== undefined && overlap >= effectiveContext)
        throw new UsageError(`--overlap must be less than the context (${effectiveContext}), got ${overlap}`);
      const data = new Uint8Array(readFileSync(input));
      const started = performance.now();
      const { file, stats } = compressBytes(data, model, {
        engine: engineIdentity(),
        maxStreams: streams,
        contextMixing,
        context,
        overlap,
      });
      const seconds = (performance.now() - started) / 1000;
      writeFileSync(output, file);
      const bpb = data.length > 0 ? ((file.length * 8) / data.length).toFixed(4) : '–';
      process.stdout.write(
        `${input}: ${data.length} bytes → ${output}: ${file.length} bytes, ${bpb} bits per byte, ` +
          `${seconds.toFixed(1)} s (${(data.length / 1024 / Math.max(seconds, 1e-9)).toFixed(2)} KiB/s)` +
          (values.online ? `, ${stats.trainingSteps} training steps` : '') +
          (contextMixing && data.length > 0
            ? `; the model alone: ${(stats.modelBits / data.length).toFixed(4)} bits per byte (ideal code)`
            : '') +
          '\n',
      );
    } finally {
      model.dispose();
    }
  },
};
