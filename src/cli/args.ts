// Argument parsing shared by the subcommands: node's parseArgs with its errors turned into usage
// errors, and the checks that several commands make on the same kinds of flag.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './command.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options, P extends boolean> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: P; strict: true }>>;

/** parseArgs in strict mode; a malformed command line becomes a UsageError with parseArgs' reason. */
export function parseCommandArgs<O extends Options, P extends boolean = false>(args: string[], options: O, allowPositionals?: P): Parsed<O, P> {
  try {
    return parseArgs({ args, options, allowPositionals: (allowPositionals ?? false) as P, strict: true });
  } catch (error) {
    // Drop parseArgs' hint about `--`, which reads as noise after a mistyped flag.
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** A numeric flag: `fallback` when absent, else a number that passes `check` (described by `what`). */
export function numberFlag(name: string, raw: string | undefined, fallback: number, check: (n: number) => boolean, what: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !check(n)) throw new UsageError(`--${name} must be ${what}, got "${raw}"`);
  return n;
}

export const isPositiveInteger = (n: number): boolean => Number.isInteger(n) && n >= 1;

export function positiveIntegerFlag(name: string, raw: string | undefined, fallback: number): number {
  return numberFlag(name, raw, fallback, isPositiveInteger, 'a positive integer');
}

/** `--device`: auto, cpu, cuda or cuda:N. */
export function deviceFlag(raw: string | undefined): string {
  const value = raw ?? 'auto';
  if (!/^(auto|cpu|cuda(:\d+)?)$/.test(value)) throw new UsageError(`--device must be auto, cpu, cuda or cuda:N, got "${value}"`);
  return value;
}
