// Sorted 256-value quantization maps other than bitsandbytes' (src/optim/adamw8bit-map.ts), for the 8-bit AdamW
// tests: the kernels' code searches must give the reference's codes for any strictly increasing map.
import type { AdamW8bitMaps } from '../../src/engine/engine.js';
import { QUANT_MAP_SIZE } from '../../src/optim/adamw8bit-map.js';

function sorted(values: number[]): Float32Array {
  const map = Float32Array.from(values).sort();
  for (let i = 1; i < map.length; i++) {
    if (!(map[i - 1]! < map[i]!)) throw new Error(`test map: value ${i} repeats`);
  }
  if (map.length !== QUANT_MAP_SIZE) throw new Error(`test map: ${map.length} values`);
  return map;
}

/** Evenly spaced maps over [-1, 1] and [0, 1]. */
export function linearQuantMaps(): AdamW8bitMaps {
  const count = QUANT_MAP_SIZE;
  return {
    signed: sorted(Array.from({ length: count }, (_, i) => -1 + (2 * i) / (count - 1))),
    unsigned: sorted(Array.from({ length: count }, (_, i) => i / (count - 1))),
  };
}

/**
 * Maps whose searches walk further than the branch-free searches cover (the CPU's AVX-512 form, CUDA's threshold
 * records): 100 values within 1% below 1, tiny ones from 1e-20 (1e-30 unsigned), and values past ±1 up to ±8.
 */
export function crowdedQuantMaps(): AdamW8bitMaps {
  return {
    signed: sorted([
      ...Array.from({ length: 100 }, (_, i) => 0.99 + i * 1e-4),
      ...Array.from({ length: 60 }, (_, i) => -(10 ** (-20 + i / 3))),
      ...Array.from({ length: 60 }, (_, i) => 10 ** (-20 + i / 3)),
      ...Array.from({ length: 35 }, (_, i) => (i < 18 ? -8 + i / 3 : 1.5 + (i - 18) / 3)),
      0,
    ]),
    unsigned: sorted([
      0,
      ...Array.from({ length: 120 }, (_, i) => 10 ** (-30 + i / 4)),
      ...Array.from({ length: 100 }, (_, i) => 0.5 + i * 1e-3),
      ...Array.from({ length: 35 }, (_, i) => 1 + i / 4),
    ]),
  };
}
