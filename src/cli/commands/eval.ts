import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { runEval, type EvalSettings, type RetrievalSettings } from '../../eval/run-eval.js';
import { formatReport, writeEvalHtml } from '../../eval/report.js';
import {
  PositionOverrideError,
  validatePositionOverrides,
  type PositionOverrides,
} from '../../eval/position-overrides.js';
import { DEFAULT_CHUNK } from '../../eval/causal-scan.js';
import { UsageError, type Command } from '../command.js';
import { checkOutputFile, numberFlag, parseCommandArgs, positiveIntegerFlag, usableDevice } from '../args.js';

const USAGE = `Usage: andromeda eval --model <checkpoint> [--model <label>=<checkpoint> ...] [options]

Long-context evaluation of trained checkpoints (a run directory or one checkpoint):
held-out loss and bits per byte by position bucket out to many times the training length,
passkey retrieval and needle-in-a-haystack accuracy by prompt length and depth, under the
position settings the checkpoint was trained with or the overrides below.

Loss by position:
  --length <n>               positions scored per window, 0 to skip (default: 4096)
  --windows <n>              windows scored, taken evenly from the documents long enough
                             (default: 8)
  --bucket <n>               width of the first position bucket; each next one doubles
                             (default: the training length)
  --text <file>              score this file instead of the bundled corpus's held-out split
                             (also the needle's haystack)
  --train-length <n>         the training length, when the checkpoint does not record it
                             (default: its trainer's --seq-len, else the config's maxSeqLen)

Retrieval (greedy continuation must be the number):
  --passkey <lengths>        passkey prompts of these lengths in tokens, e.g. 512,1024,2048
  --needle <lengths>         needle-in-a-haystack prompts of these lengths
  --depths <list>            where the fact goes, fractions of the filler
                             (default: 0,0.25,0.5,0.75,1)
  --trials <n>               prompts per length and depth, each a different number (default: 5)
  --seed <n>                 seed of the numbers (default: 0)

Position overrides (nothing here changes a weight; one rotary scaling at a time):
  --rotary-interpolation <f> linear position interpolation: positions divided by f
  --rotary-ntk <f>           NTK-aware base rescale: base · f^(dim/(dim−2))
  --rotary-dynamic-ntk <f>   dynamic NTK: the base grows with the keys beyond --original-length
  --rotary-yarn <f>          YaRN with factor f from --original-length
  --original-length <n>      where YaRN / dynamic NTK start (default: the training length)
  --xpos <on|off>            xPos on the rotary heads
  --alibi-heads <n>          ALiBi on the first n heads, 0 for none

Output:
  --json                     print the report as JSON instead of tables
  --html <file>              write a self-contained HTML page with the curves and tables
  --device <d>               auto | cpu | cuda | cuda:N (default: cpu)
  --chunk <n>                tokens per forward through the KV cache (default: ${DEFAULT_CHUNK})
  -h, --help                 show this help

Examples:
  andromeda eval --model runs/mix --length 8192 --html eval.html
  andromeda eval --model alibi=runs/alibi --model rotary=runs/rotary --length 4096 --json
  andromeda eval --model runs/rotary --rotary-yarn 4 --passkey 512,1024,2048`;

/** "512", "2k" → 512, 2048. */
function lengthValue(flag: string, raw: string): number {
  const m = /^\s*(\d+)(k?)\s*$/i.exec(raw);
  const n = m ? Number(m[1]) * (m[2] ? 1024 : 1) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${flag}: "${raw}" is not a positive length`);
  return n;
}

function lengthList(flag: string, raw: string): number[] {
  const values = raw.split(',').map((s) => lengthValue(flag, s));
  if (new Set(values).size !== values.length) throw new UsageError(`--${flag}: "${raw}" repeats a length`);
  return values;
}

function depthList(raw: string): number[] {
  const values = raw.split(',').map((s) => {
    const d = Number(s);
    if (s.trim() === '' || !(d >= 0 && d <= 1)) throw new UsageError(`--depths: "${s}" is not a fraction in [0, 1]`);
    return d;
  });
  if (new Set(values).size !== values.length) throw new UsageError(`--depths: "${raw}" repeats a depth`);
  return values;
}

function onOff(flag: string, raw: string | undefined): boolean | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'on' || raw === 'true') return true;
  if (raw === 'off' || raw === 'false') return false;
  throw new UsageError(`--${flag} must be on or off, got "${raw}"`);
}

/** "label=path" or "path" (labelled by its last folder name). */
function modelArgument(raw: string): { label: string; path: string } {
  const eq = raw.indexOf('=');
  const [label, path] = eq > 0 ? [raw.slice(0, eq), raw.slice(eq + 1)] : [null, raw];
  if (path === '') throw new UsageError(`--model "${raw}": no checkpoint path`);
  if (!existsSync(path)) throw new UsageError(`--model ${path}: no such checkpoint or run directory`);
  return { label: label ?? (resolve(path).split('/').pop() || path), path };
}

export interface ParsedEvalArgs {
  settings: EvalSettings;
  json: boolean;
  html: string | null;
}

/** Every flag checked, with its name in the message, before any model is loaded. */
export function parseEvalArgs(args: string[]): ParsedEvalArgs {
  const { values } = parseCommandArgs(args, {
    model: { type: 'string', multiple: true },
    length: { type: 'string' },
    windows: { type: 'string' },
    bucket: { type: 'string' },
    text: { type: 'string' },
    'train-length': { type: 'string' },
    passkey: { type: 'string' },
    needle: { type: 'string' },
    depths: { type: 'string' },
    trials: { type: 'string' },
    seed: { type: 'string' },
    'rotary-interpolation': { type: 'string' },
    'rotary-ntk': { type: 'string' },
    'rotary-dynamic-ntk': { type: 'string' },
    'rotary-yarn': { type: 'string' },
    'original-length': { type: 'string' },
    xpos: { type: 'string' },
    'alibi-heads': { type: 'string' },
    json: { type: 'boolean' },
    html: { type: 'string' },
    device: { type: 'string' },
    chunk: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (!values.model?.length) throw new UsageError('give the checkpoint to evaluate with --model <checkpoint>');
  const models = values.model.map(modelArgument);
  if (new Set(models.map((m) => m.label)).size !== models.length)
    throw new UsageError(`--model: two models have the same label; name them --model <label>=<checkpoint>`);

  const length = numberFlag('length', values.length, 4096, (n) => Number.isInteger(n) && n >= 0, 'an integer ≥ 0');
  const windows = positiveIntegerFlag('windows', values.windows, 8);
  const bucketWidth = values.bucket === undefined ? undefined : positiveIntegerFlag('bucket', values.bucket, 0);
  const trainLength =
    values['train-length'] === undefined ? undefined : positiveIntegerFlag('train-length', values['train-length'], 0);
  const factor = (flag: string): number | undefined =>
    values[flag as keyof typeof values] === undefined
      ? undefined
      : numberFlag(
          flag,
          values[flag as keyof typeof values] as string,
          1,
          (n) => Number.isFinite(n) && n >= 1,
          'a number ≥ 1',
        );
  const overrides: PositionOverrides = Object.fromEntries(
    Object.entries({
      interpolation: factor('rotary-interpolation'),
      ntk: factor('rotary-ntk'),
      dynamicNtk: factor('rotary-dynamic-ntk'),
      yarn: factor('rotary-yarn'),
      originalLength:
        values['original-length'] === undefined
          ? undefined
          : positiveIntegerFlag('original-length', values['original-length'], 0),
      xpos: onOff('xpos', values.xpos),
      alibiHeads:
        values['alibi-heads'] === undefined
          ? undefined
          : numberFlag('alibi-heads', values['alibi-heads'], 0, (n) => Number.isInteger(n) && n >= 0, 'an integer ≥ 0'),
    }).filter(([, v]) => v !== undefined),
  );
  try {
    validatePositionOverrides(overrides);
  } catch (error) {
    if (error instanceof PositionOverrideError) throw new UsageError(error.message);
    throw error;
  }

  const depths = depthList(values.depths ?? '0,0.25,0.5,0.75,1');
  const trials = positiveIntegerFlag('trials', values.trials, 5);
  const retrieval = (flag: 'passkey' | 'needle'): RetrievalSettings | null =>
    values[flag] === undefined ? null : { lengths: lengthList(flag, values[flag]!), depths, trials };
  const passkey = retrieval('passkey');
  const needle = retrieval('needle');
  if (length === 0 && !passkey && !needle)
    throw new UsageError('--length 0 skips the loss curve and no --passkey or --needle is given: nothing to evaluate');
  if (values.text !== undefined && !existsSync(values.text))
    throw new UsageError(`--text ${values.text}: no such file`);
  const html = values.html ?? null;
  if (html)
    checkOutputFile('--html', html, [
      ...models.map((m) => ({ what: 'checkpoint', path: m.path })),
      ...(values.text ? [{ what: 'text', path: values.text }] : []),
    ]);
  const seed = numberFlag('seed', values.seed, 0, (n) => Number.isSafeInteger(n) && n >= 0, 'a non-negative integer');
  const chunk = positiveIntegerFlag('chunk', values.chunk, DEFAULT_CHUNK);
  const device = usableDevice(values.device ?? 'cpu');
  return {
    settings: {
      models,
      overrides,
      length,
      windows,
      bucketWidth,
      textFile: values.text,
      trainLength,
      passkey,
      needle,
      device,
      chunk,
      seed,
    },
    json: values.json === true,
    html,
  };
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'long-context evaluation: loss by position, passkey and needle retrieval, position overrides',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseEvalArgs(args);
    const report = await runEval({ ...parsed.settings, log: (line) => process.stderr.write(`${line}\n`) });
    if (parsed.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else process.stdout.write(formatReport(report));
    if (parsed.html) {
      writeEvalHtml(parsed.html, report);
      process.stderr.write(`plot: ${parsed.html}\n`);
    }
  },
};
