// Per-kernel timing of an engine, for finding the slow call in a training step. Sums the time per
// (method, arguments' shape) and prints the costliest entries at exit (30, or ANDROMEDA_CUDA_PROFILE_ROWS).
// ANDROMEDA_CUDA_PROFILE=1 ('waits') wraps every kernel method with a device wait before and after it:
// serialised, so totals are for comparing calls, not for throughput (launch latency is counted in).
// ANDROMEDA_CUDA_PROFILE=events records a device event before and after each call instead: the device's
// own time per kernel with the host still running ahead, plus the idle gaps between calls (time the
// device waited for the host, or spent in copies the profiler does not wrap).
import type { DeviceGraph, Engine } from './engine.js';
import { KERNEL_METHODS } from './native-abi.js';

interface TimingEngine {
  timingMark(): number;
  timingRead(): Float64Array;
  synchronize(): void;
}
interface Profiled {
  profileReset?: () => void;
}

/** Clears the totals so far (a benchmark's warm-up) when the engine is being profiled; otherwise nothing. */
export function resetProfile(engine: Engine): void {
  (engine as Profiled).profileReset?.();
}

/** Rows the exit report prints: ANDROMEDA_CUDA_PROFILE_ROWS (a positive integer), else 30. */
function reportRows(): number {
  const raw = process.env.ANDROMEDA_CUDA_PROFILE_ROWS;
  if (raw === undefined) return 30;
  const rows = Number(raw);
  if (!Number.isInteger(rows) || rows < 1)
    throw new Error(`ANDROMEDA_CUDA_PROFILE_ROWS must be a positive integer, got ${JSON.stringify(raw)}`);
  return rows;
}

/** A short description of a call's sizes (numbers and number arrays; buffers by dtype and strides). */
function signature(args: unknown[]): string {
  return args
    .map((a) => {
      if (typeof a === 'number' || typeof a === 'boolean' || typeof a === 'string') return String(a);
      if (Array.isArray(a)) return a.every((v) => typeof v === 'number') ? `[${a.join(',')}]` : `${a.length} items`;
      if (a && typeof a === 'object') {
        const o = a as Record<string, unknown>;
        if ('handle' in o)
          return `${o.dtype}${Array.isArray(o.strides) ? `/${(o.strides as number[]).join(',')}` : ''}`;
        if ('rows' in o && 'cols' in o && 'rms' in o)
          return (
            `${o.rms ? 'rms' : 'layer'} ${(o.a as { dtype: string }).dtype} ${o.rows}x${o.cols}` +
            `${o.b ? ' +residual' : ''}`
          );
        if ('m' in o)
          return (
            `m${o.m} n${o.n} k${o.k} b${o.batch} ${o.transA ? 'T' : 'N'}${o.transB ? 'T' : 'N'} sA${o.strideA}` +
            ` sB${o.strideB} ${(o.c as { dtype: string }).dtype}`
          );
        if ('rotaryDim' in o && 'length' in o)
          return `b${o.batch} h${o.heads} n${o.length} d${o.headDim} r${o.rotaryDim}${o.transpose ? ' T' : ''}`;
        if ('dim' in o && 'n' in o && 'heads' in o) return `b${o.batch} n${o.n} h${o.heads} d${o.dim}`;
        if ('batch' in o && 'heads' in o && !('kvHeads' in o))
          return `b${o.batch} h${o.heads} q${o.queryLen} k${o.keyLen}`;
        if ('batch' in o && 'heads' in o)
          return `b${o.batch} h${o.heads}/${o.kvHeads} q${o.queryLen} k${o.keyLen} d${o.headDim}`;
      }
      return a === null ? 'null' : '·';
    })
    .join(' ');
}

/** Wraps the engine's kernel methods; the report (also printed at exit) lists the totals so far. */
export function installProfiler(engine: Engine & TimingEngine, mode: 'waits' | 'events'): { report(): string[] } {
  type Tally = Map<string, { ms: number; calls: number }>;
  const tally = (into: Tally, key: string, ms: number) => {
    const entry = into.get(key) ?? { ms: 0, calls: 0 };
    entry.ms += ms;
    entry.calls++;
    into.set(key, entry);
  };
  const totals: Tally = new Map();
  const add = (key: string, ms: number) => tally(totals, key, ms);
  const target = engine as unknown as Record<string, (...args: unknown[]) => unknown>;
  let idle = 0;
  // Idle time by the call that ended it: what the device waited for (the host issuing it, or a copy before it).
  const idleBefore: Tally = new Map();
  let pending: string[] = [];
  // Marks come in pairs around each call; the gap from one call's end to the next call's start is idle time.
  const collect = () => {
    const gaps = engine.timingRead();
    pending.forEach((key, i) => {
      add(key, gaps[2 * i]!);
      if (2 * i + 1 < gaps.length && i + 1 < pending.length) {
        idle += gaps[2 * i + 1]!;
        tally(idleBefore, pending[i + 1]!, gaps[2 * i + 1]!);
      }
    });
    pending = [];
  };
  // Lets a benchmark drop its warm-up steps from the totals (resetProfile).
  (engine as Profiled).profileReset = () => {
    if (pending.length) collect();
    totals.clear();
    idleBefore.clear();
    idle = 0;
  };
  if (mode === 'events') {
    const synchronize = engine.synchronize.bind(engine);
    engine.synchronize = () => {
      synchronize();
      if (pending.length) collect();
    };
  }
  // One call timed: between two device events (read back in batches), or with a wait on each side.
  const timed = <T>(run: () => T, key: () => string): T => {
    if (mode === 'events') {
      engine.timingMark();
      const result = run();
      engine.timingMark();
      pending.push(key());
      if (pending.length >= 4096) collect();
      return result;
    }
    engine.synchronize();
    const t0 = performance.now();
    const result = run();
    engine.synchronize();
    add(key(), performance.now() - t0);
    return result;
  };
  // Inside a graph capture nothing runs and the device may not be waited on: calls pass through unprofiled, and
  // each replay of the graph is timed as one call named by what it captured.
  let captured: string[] | null = null;
  const captureGraph = engine.captureGraph.bind(engine);
  engine.captureGraph = (fn: () => void) => {
    const calls: string[] = [];
    captured = calls;
    let graph: DeviceGraph;
    try {
      graph = captureGraph(fn);
    } finally {
      captured = null;
    }
    const key = `graph replay (${calls.length} calls: ${[...new Set(calls)].join(', ')})`;
    const replay = graph.replay.bind(graph);
    graph.replay = () => timed(replay, () => key);
    return graph;
  };
  for (const name of KERNEL_METHODS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = (...args: unknown[]) => {
      if (captured) {
        captured.push(name);
        return original.apply(engine, args);
      }
      return timed(
        () => original.apply(engine, args),
        () => `${name} ${signature(args)}`,
      );
    };
  }
  const shown = reportRows();
  const row = (ms: number, calls: number, what: string) =>
    `${ms.toFixed(1).padStart(10)} ms ${String(calls).padStart(6)}×  ${what}`;
  const report = (): string[] => {
    if (pending.length) collect();
    const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
    const all = rows.reduce((s, [, e]) => s + e.ms, 0);
    const lines = [
      `\n# ${engine.device} kernel ` +
        `profile: ${all.toFixed(1)} ms in ${rows.reduce((s, [, e]) => s + e.calls, 0)} calls; costliest:`,
    ];
    if (mode === 'events') lines.push(`# device idle between profiled calls: ${idle.toFixed(1)} ms`);
    for (const [key, e] of rows.slice(0, shown)) lines.push(row(e.ms, e.calls, key));
    if (mode !== 'events' || idleBefore.size === 0) return lines;
    lines.push('# device idle before each kind of call (the gap each such call ended), largest first:');
    const waits = [...idleBefore.entries()].sort((a, b) => b[1].ms - a[1].ms);
    for (const [key, e] of waits.slice(0, Math.min(shown, 15))) lines.push(row(e.ms, e.calls, `idle before ${key}`));
    return lines;
  };
  process.on('exit', () => console.log(report().join('\n')));
  return { report };
}
