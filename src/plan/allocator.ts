/**
 * The block sizes the engines' allocators hand out for a request of `bytes`, so a plan adds up what the
 * allocator will count, not the tensors' nominal sizes.
 *
 *   cuda  native/cuda/allocator.cc: requests ≤ 1 MiB round up to a power of two ≥ 512 B (carved from 2 MiB
 *         slabs), larger ones to a multiple of 2 MiB. `peakAllocated` counts these rounded sizes.
 *   cpu   native/cpu/binding.cc: every tensor is a 64-byte-aligned allocation rounded up to 64 B (an empty
 *         tensor still takes one line).
 */
export type EngineKind = 'cuda' | 'cpu';

const SMALL_LIMIT = 1 << 20;
const MIN_BLOCK = 512;
const LARGE_ROUND = 2 << 20;
const CPU_LINE = 64;

export function allocatorBlockBytes(engine: EngineKind, bytes: number): number {
  if (engine === 'cpu') return Math.ceil(Math.max(bytes, 1) / CPU_LINE) * CPU_LINE;
  if (bytes <= SMALL_LIMIT) {
    let size = MIN_BLOCK;
    while (size < bytes) size *= 2;
    return size;
  }
  return Math.ceil(bytes / LARGE_ROUND) * LARGE_ROUND;
}

/** One tensor (or `count` tensors of one size) as the plan counts it: nominal bytes and the allocator's. */
export interface TensorGroup {
  count: number;
  bytes: number;
}

export function nominalBytes(groups: readonly TensorGroup[]): number {
  return groups.reduce((sum, g) => sum + g.count * g.bytes, 0);
}

export function allocatedBytes(engine: EngineKind, groups: readonly TensorGroup[]): number {
  return groups.reduce((sum, g) => sum + g.count * allocatorBlockBytes(engine, g.bytes), 0);
}
