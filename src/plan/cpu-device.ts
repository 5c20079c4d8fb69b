import { totalmem } from 'node:os';
import type { DeviceSpec } from './devices.js';

/** The machine type the CPU figures were measured on has two cores; the float32 peak is per core times this. */
const MEASURED_CORES = 2;
const PEAK_FLOPS_MEASURED = 236.4e9;

/**
 * What the CPU tokens/s rest on, for a plan's reader: every CPU term was measured on one machine type, and on
 * another the engine runs at that CPU's speed — stop 21's Zen 3 VM with AVX2 ran every check 1.5–2.1× below them
 * (bench/results/plan.md). `isa`: the instruction set the engine uses on this machine, when known.
 */
export function cpuSpeedNote(isa?: string): string {
  const base =
    'CPU tokens/s are from measurements on an AMD EPYC Zen 4 with AVX-512 (2 cores, 3.7 GHz); ' +
    'another CPU runs at its own speed';
  if (isa === undefined || isa === 'avx512') return base;
  return (
    `${base} — this machine's engine runs its ${isa} kernels: on a Zen 3 with AVX2 every figure ran 1.5–2.1× ` +
    'below these (bench/results/plan.md, stop 21)'
  );
}

/**
 * The CPU engine on this machine running `threads` threads (default: the two of the machine type measured): its
 * RAM, and the float32 peak and memory bandwidth measured on this machine type (bench/results/cpu-kernels.md: AMD
 * EPYC Zen 4, 2 threads — 236.4 GFLOP/s peak at the measured 3.69 GHz, i.e. 118.2 per core; memory copy 35.7 GB/s
 * on 64 MiB buffers). The peak scales with the threads; the bandwidth is the machine's and is kept whole (the CPU
 * model reads it only for the KV cache, a small part of a decode step). `isa` (the engine's instruction set here)
 * words the speed note (cpuSpeedNote).
 */
export function cpuDevice(threads = MEASURED_CORES, isa?: string): DeviceSpec {
  if (!Number.isInteger(threads) || threads < 1)
    throw new Error(`cpuDevice: threads must be a positive integer, got ${threads}`);
  return {
    name:
      threads === MEASURED_CORES
        ? "this machine's CPU (RAM)"
        : `this machine's CPU (RAM), ${threads} thread${threads === 1 ? '' : 's'}`,
    memoryBytes: totalmem(),
    bandwidth: 35.7e9,
    flops: (PEAK_FLOPS_MEASURED / MEASURED_CORES) * threads,
    engine: 'cpu',
    sms: 0,
    threads,
    aliases: ['cpu'],
    speedNote: cpuSpeedNote(isa),
  };
}
