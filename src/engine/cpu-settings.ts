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

export const CPU_ISAS = ['generic', 'avx2', 'avx512'] as const;

/** Checks an instruction-set name (from `source`, e.g. "ANDROMEDA_CPU_ISA"). */
export function parseCpuIsa(value: string, source: string): (typeof CPU_ISAS)[number] {
  const isa = CPU_ISAS.find((x) => x === value);
  if (!isa) throw new EngineSettingError(`${source} must be ${CPU_ISAS.join(', ')}, got ${JSON.stringify(value)}`);
  return isa;
}
