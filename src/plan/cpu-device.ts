import { totalmem } from 'node:os';
import type { DeviceSpec } from './devices.js';

/**
 * The CPU engine on this machine: its RAM, and the float32 peak and memory bandwidth measured on this machine type
 * (bench/results/cpu-kernels.md: AMD EPYC Zen 4, 2 threads — 236.4 GFLOP/s peak at the measured 3.69 GHz, memory
 * copy 35.7 GB/s on 64 MiB buffers).
 */
export function cpuDevice(): DeviceSpec {
  return {
    name: "this machine's CPU (RAM)",
    memoryBytes: totalmem(),
    bandwidth: 35.7e9,
    flops: 236.4e9,
    engine: 'cpu',
    sms: 0,
    aliases: ['cpu'],
  };
}
