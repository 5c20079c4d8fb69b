import type { CpuTerms } from './throughput.js';
/**
 * Accelerators a plan can be made for: memory, memory bandwidth and dense bfloat16 tensor throughput (without
 * sparsity), from the vendors' data sheets. `--memory` makes an unnamed device of a given size; `--device cpu`
 * this machine's RAM (src/plan/cpu-device.ts).
 */
export interface DeviceSpec {
  name: string;
  /** Bytes of device memory. */
  memoryBytes: number;
  /** Bytes per second. */
  bandwidth: number;
  /** Dense bfloat16 FLOP/s (float32 on the CPU). */
  flops: number;
  engine: 'cuda' | 'cpu';
  /** Streaming multiprocessors (GPUs): the paged attention sizes its key splits by them. */
  sms: number;
  /**
   * The most shared memory one block may opt in to (GPUs, bytes; the CUDA guide's table by compute capability): the
   * decode kernel runs only where its shared memory fits (native/cuda/paged/attention.cu).
   */
  blockSharedMemory?: number;
  /** The CPU engine's threads (CPU only): the host work of a decode step runs on one, the kernels on all. */
  threads?: number;
  /** Aliases accepted by --gpu (lower case, spaces and dashes ignored). */
  aliases: string[];
  /** What the tokens/s figures for this device rest on, where a reader should know (the CPU's: one machine type). */
  speedNote?: string;
  /** The CPU engine's terms (CPU only): those of the measured machine type this CPU was matched to. */
  cpuTerms?: CpuTerms;
}

const GB = 1e9;
const GiB = 2 ** 30;
const T = 1e12;

export const GPUS: readonly DeviceSpec[] = [
  {
    name: 'H100 SXM 80GB',
    blockSharedMemory: 232448,
    sms: 132,
    memoryBytes: 80 * GiB,
    bandwidth: 3.35 * T,
    flops: 989 * T,
    engine: 'cuda',
    aliases: ['h100', 'h100sxm'],
  },
  {
    name: 'H100 PCIe 80GB',
    blockSharedMemory: 232448,
    sms: 114,
    memoryBytes: 80 * GiB,
    bandwidth: 2.0 * T,
    flops: 756 * T,
    engine: 'cuda',
    aliases: ['h100pcie'],
  },
  {
    name: 'H100 NVL 94GB',
    blockSharedMemory: 232448,
    sms: 132,
    memoryBytes: 94 * GiB,
    bandwidth: 3.9 * T,
    flops: 835 * T,
    engine: 'cuda',
    aliases: ['h100nvl'],
  },
  {
    name: 'H200 141GB',
    blockSharedMemory: 232448,
    sms: 132,
    memoryBytes: 141 * GB,
    bandwidth: 4.8 * T,
    flops: 989 * T,
    engine: 'cuda',
    aliases: ['h200'],
  },
  {
    name: 'B200 180GB',
    blockSharedMemory: 232448,
    sms: 148,
    memoryBytes: 180 * GB,
    bandwidth: 8 * T,
    flops: 2250 * T,
    engine: 'cuda',
    aliases: ['b200'],
  },
  {
    name: 'A100 SXM 80GB',
    blockSharedMemory: 166912,
    sms: 108,
    memoryBytes: 80 * GiB,
    bandwidth: 2.039 * T,
    flops: 312 * T,
    engine: 'cuda',
    aliases: ['a100', 'a10080', 'a10080gb'],
  },
  {
    name: 'A100 40GB',
    blockSharedMemory: 166912,
    sms: 108,
    memoryBytes: 40 * GiB,
    bandwidth: 1.555 * T,
    flops: 312 * T,
    engine: 'cuda',
    aliases: ['a10040', 'a10040gb'],
  },
  {
    name: 'L40S 48GB',
    blockSharedMemory: 101376,
    sms: 142,
    memoryBytes: 48 * GiB,
    bandwidth: 0.864 * T,
    flops: 362 * T,
    engine: 'cuda',
    aliases: ['l40s'],
  },
  {
    name: 'L4 24GB',
    blockSharedMemory: 101376,
    sms: 58,
    memoryBytes: 24 * GiB,
    bandwidth: 0.3 * T,
    flops: 121 * T,
    engine: 'cuda',
    aliases: ['l4'],
  },
  {
    name: 'A10 24GB',
    blockSharedMemory: 101376,
    sms: 72,
    memoryBytes: 24 * GiB,
    bandwidth: 0.6 * T,
    flops: 125 * T,
    engine: 'cuda',
    aliases: ['a10', 'a10g'],
  },
  {
    name: 'RTX 4090 24GB',
    blockSharedMemory: 101376,
    sms: 128,
    memoryBytes: 24 * GiB,
    bandwidth: 1.008 * T,
    flops: 165 * T,
    engine: 'cuda',
    aliases: ['rtx4090', '4090'],
  },
  {
    name: 'RTX 3090 24GB',
    blockSharedMemory: 101376,
    sms: 82,
    memoryBytes: 24 * GiB,
    bandwidth: 0.936 * T,
    flops: 71 * T,
    engine: 'cuda',
    aliases: ['rtx3090', '3090'],
  },
  {
    name: 'RTX 6000 Ada 48GB',
    blockSharedMemory: 101376,
    sms: 142,
    memoryBytes: 48 * GiB,
    bandwidth: 0.96 * T,
    flops: 364 * T,
    engine: 'cuda',
    aliases: ['rtx6000ada', '6000ada'],
  },
  {
    name: 'V100 32GB',
    blockSharedMemory: 98304,
    sms: 80,
    memoryBytes: 32 * GiB,
    bandwidth: 0.9 * T,
    flops: 125 * T,
    engine: 'cuda',
    aliases: ['v100'],
  },
  {
    name: 'T4 16GB',
    blockSharedMemory: 65536,
    sms: 40,
    memoryBytes: 16 * GiB,
    bandwidth: 0.32 * T,
    flops: 65 * T,
    engine: 'cuda',
    aliases: ['t4'],
  },
];

const key = (s: string): string => s.toLowerCase().replace(/[\s_-]+/g, '');

/** The table's GPU for `name` (case, spaces and dashes ignored), or null. */
export function findGpu(name: string): DeviceSpec | null {
  const k = key(name);
  return GPUS.find((g) => g.aliases.includes(k) || key(g.name) === k) ?? null;
}

/** The table's GPU a driver's device name describes ("NVIDIA H100 80GB HBM3" → H100 SXM), or null. */
export function gpuFromDescription(description: string): DeviceSpec | null {
  const d = description.toLowerCase();
  if (d.includes('h200')) return findGpu('h200');
  if (d.includes('h100')) return findGpu(d.includes('pcie') ? 'h100pcie' : d.includes('nvl') ? 'h100nvl' : 'h100');
  if (d.includes('a100')) return findGpu(/40\s*gb/.test(d) ? 'a10040' : 'a100');
  for (const g of GPUS) if (g.aliases.some((a) => a.length > 3 && key(d).includes(a))) return g;
  return null;
}
