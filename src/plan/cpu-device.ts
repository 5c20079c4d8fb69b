import { totalmem } from 'node:os';
import type { DeviceSpec } from './devices.js';
import { CPU_EFFICIENCY, CPU_EFFICIENCY_ZEN3_AVX2, type CpuTerms } from './throughput.js';

/**
 * A machine type the CPU terms were measured on (bench/results/plan.md, cpu-kernels.md): its cores, the float32 peak
 * of all of them at the clock the cores were measured running, its memory copy bandwidth, and the planner's terms
 * fitted there (src/plan/throughput.ts). A CPU is matched to one by the instruction set the engine runs on it.
 */
interface CpuProfile {
  machine: string;
  cores: number;
  peakFlops: number;
  bandwidth: number;
  terms: CpuTerms;
}

/** AMD EPYC Zen 4, AVX-512 (stops 17–20): 236.4 GFLOP/s at 3.69 GHz; memory copy 35.7 GB/s on 64 MiB buffers. */
const ZEN4_AVX512: CpuProfile = {
  machine: 'an AMD EPYC Zen 4 with AVX-512 (2 cores, 3.7 GHz)',
  cores: 2,
  peakFlops: 236.4e9,
  bandwidth: 35.7e9,
  terms: CPU_EFFICIENCY,
};

/**
 * AMD EPYC Zen 3, AVX2 only (stops 21–22): 192.1 GFLOP/s at 3.00 GHz (bench/results/logs/plan/cpu-kernels-zen3-
 * stop21.md); the bandwidth is not measured there and kept at the Zen 4's (it is read only for a decode step's
 * keys and values, a small part of it).
 */
const ZEN3_AVX2: CpuProfile = {
  machine: 'an AMD EPYC Zen 3 with AVX2 (2 cores, 3.0 GHz)',
  cores: 2,
  peakFlops: 192.1e9,
  bandwidth: 35.7e9,
  terms: CPU_EFFICIENCY_ZEN3_AVX2,
};

/** The measured machine type for a CPU whose engine runs `isa` (unknown: the first one measured). */
function profileFor(isa?: string): CpuProfile {
  return isa === undefined || isa === 'avx512' ? ZEN4_AVX512 : ZEN3_AVX2;
}

/**
 * What the CPU tokens/s rest on, for a plan's reader: the terms of the machine type matched to this CPU by the
 * engine's instruction set (`isa`); another CPU of that set runs at its own speed.
 */
export function cpuSpeedNote(isa?: string): string {
  const profile = profileFor(isa);
  const base = `CPU tokens/s are from measurements on ${profile.machine}`;
  if (isa === undefined) return `${base}; another CPU runs at its own speed`;
  const kind = isa === 'avx512' ? 'AVX-512' : 'AVX2';
  return (
    `${base}, the measured type nearest this CPU (the engine runs ${isa} kernels here, ${kind} there); ` +
    'another CPU runs at its own speed'
  );
}

/**
 * The CPU engine on this machine running `threads` threads (default: the measured machine type's cores): its RAM,
 * and the float32 peak, bandwidth and terms of the machine type matched by `isa`, the instruction set the engine
 * runs here (cpuSpeedNote). The peak scales with the threads; the bandwidth is the machine's and is kept whole.
 */
export function cpuDevice(threads?: number, isa?: string): DeviceSpec {
  const profile = profileFor(isa);
  const count = threads ?? profile.cores;
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`cpuDevice: threads must be a positive integer, got ${threads}`);
  return {
    name:
      count === profile.cores
        ? "this machine's CPU (RAM)"
        : `this machine's CPU (RAM), ${count} thread${count === 1 ? '' : 's'}`,
    memoryBytes: totalmem(),
    bandwidth: profile.bandwidth,
    flops: (profile.peakFlops / profile.cores) * count,
    engine: 'cpu',
    sms: 0,
    threads: count,
    aliases: ['cpu'],
    speedNote: cpuSpeedNote(isa),
    cpuTerms: profile.terms,
  };
}
