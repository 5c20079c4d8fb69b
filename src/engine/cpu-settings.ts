// The CPU engine's user settings, checked before they reach the addon: the thread count
// (ANDROMEDA_THREADS or CpuEngine.threads(n); native/cpu/parallel.h enforces the same bound) and the
// instruction-set cap (ANDROMEDA_CPU_ISA or CpuEngine.limitIsa), both read once when the engine starts.

/** Thread counts the engine accepts (the calling thread included); native/cpu/parallel.h has the same bound. */
export const MAX_CPU_THREADS = 1024;

/** A bad engine setting (an environment variable or argument): the message names it; not a data error. */
export class EngineSettingError extends Error {
  override name = 'EngineSettingError';
}

/** Checks a thread count (from `source`, e.g. "ANDROMEDA_THREADS") and returns it as a number. */
export function parseThreadCount(value: unknown, source: string): number {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CPU_THREADS) {
    throw new EngineSettingError(
      `${source} must be an integer from 1 to ${MAX_CPU_THREADS}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Every SIMD instruction-set name the CPU engine knows, of all architectures. */
export const CPU_ISAS = ['generic', 'avx2', 'avx512', 'neon'] as const;
export type CpuIsa = (typeof CPU_ISAS)[number];

/**
 * The instruction sets the CPU engine has on an architecture (a Node `process.arch`), from the portable baseline
 * up; the engine caps at a rank of this list (native/cpu/simd.h). NEON is part of every arm64 CPU.
 */
export function cpuIsasOf(arch: string): readonly CpuIsa[] {
  if (arch === 'x64') return ['generic', 'avx2', 'avx512'];
  if (arch === 'arm64') return ['generic', 'neon'];
  return ['generic'];
}

/** Checks an instruction-set name (from `source`, e.g. "ANDROMEDA_CPU_ISA") against this machine's architecture. */
export function parseCpuIsa(value: string, source: string, arch: string = process.arch): CpuIsa {
  const choices = cpuIsasOf(arch);
  const isa = choices.find((x) => x === value);
  if (isa) return isa;
  const elsewhere = CPU_ISAS.some((x) => x === value) ? ` (${value} is not an instruction set of ${arch} CPUs)` : '';
  throw new EngineSettingError(`${source} must be ${choices.join(', ')}, got ${JSON.stringify(value)}${elsewhere}`);
}
