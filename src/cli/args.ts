// Argument parsing shared by the subcommands: node's parseArgs with its errors turned into usage
// errors, and the checks that several commands make on the same kinds of flag.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, relative, resolve, isAbsolute } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { deviceUnavailableReason, resolveDevice } from '../engine/registry.js';
import { UsageError } from './command.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options, P extends boolean> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; allowPositionals: P; strict: true }>
>;

/** parseArgs in strict mode; a malformed command line becomes a UsageError with parseArgs' reason. */
export function parseCommandArgs<O extends Options, P extends boolean = false>(
  args: string[],
  options: O,
  allowPositionals?: P,
): Parsed<O, P> {
  try {
    return parseArgs({ args, options, allowPositionals: (allowPositionals ?? false) as P, strict: true });
  } catch (error) {
    // Drop parseArgs' hint about `--`, which reads as noise after a mistyped flag.
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** A numeric flag: `fallback` when absent, else a number that passes `check` (described by `what`). */
export function numberFlag(
  name: string,
  raw: string | undefined,
  fallback: number,
  check: (n: number) => boolean,
  what: string,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !check(n)) throw new UsageError(`--${name} must be ${what}, got "${raw}"`);
  return n;
}

// Safe integers only: 1e30 is an integer to JavaScript but no count a command can use (it would print and
// size as garbage).
export const isPositiveInteger = (n: number): boolean => Number.isSafeInteger(n) && n >= 1;

export function positiveIntegerFlag(name: string, raw: string | undefined, fallback: number): number {
  return numberFlag(name, raw, fallback, isPositiveInteger, 'a positive integer');
}

/** `--device`: auto, cpu, cuda or cuda:N. */
export function deviceFlag(raw: string | undefined): string {
  const value = raw ?? 'auto';
  if (!/^(auto|cpu|cuda(:\d+)?)$/.test(value))
    throw new UsageError(`--device must be auto, cpu, cuda or cuda:N, got "${value}"`);
  return value;
}

/**
 * `--device` resolved to a device this machine can run on ('auto' picks one); otherwise a usage error
 * saying why the named device cannot be used here, before anything is loaded onto it.
 */
export function usableDevice(raw: string | undefined): string {
  const device = resolveDevice(deviceFlag(raw));
  const unavailable = deviceUnavailableReason(device);
  if (unavailable) throw new UsageError(`--device ${raw}: ${unavailable}`);
  return device;
}

/** The real path of `path`, or of its nearest existing parent joined with the rest, so links are seen through. */
function realPathOf(path: string): string {
  const absolute = resolve(path);
  let existing = absolute;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  return resolve(realpathSync(existing), relative(existing, absolute));
}

/**
 * Checks an output file before any work: its folder exists, it is not a directory, and it is none of
 * `inputs` (files or directories the command reads) nor inside one of them — writing it would destroy
 * what is being read.
 */
export function checkOutputFile(flag: string, output: string, inputs: readonly { what: string; path: string }[]): void {
  const folder = dirname(resolve(output));
  if (!existsSync(folder)) throw new UsageError(`${flag} ${output}: folder ${folder} does not exist`);
  if (!statSync(folder).isDirectory()) throw new UsageError(`${flag} ${output}: ${folder} is a file, not a folder`);
  if (existsSync(output) && statSync(output).isDirectory())
    throw new UsageError(`${flag} ${output} is a directory; give a file name`);
  const target = realPathOf(output);
  for (const input of inputs) {
    const source = realPathOf(input.path);
    const inside = relative(source, target);
    if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
      throw new UsageError(
        `${flag} ${output} would overwrite ${inside === '' ? '' : 'a file of '}the ${input.what} ${input.path}` +
          `; write to another file`,
      );
    }
  }
}

/**
 * Checks an output directory that the command will create if needed: it is not a file, and no folder on
 * the way to it is a file either (which mkdir would report only as ENOTDIR).
 */
export function checkOutputDirectory(flag: string, dir: string): void {
  let path = resolve(dir);
  while (!existsSync(path) && dirname(path) !== path) path = dirname(path);
  if (!statSync(path).isDirectory()) {
    throw new UsageError(
      path === resolve(dir)
        ? `${flag} ${dir} is a file; give a directory`
        : `${flag} ${dir}: ${path} is a file, not a folder`,
    );
  }
}
