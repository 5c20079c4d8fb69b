// The CUDA form of 8-bit AdamW (native/fused/adamw8bit/cuda.cu) against its CPU form (cpu.cc): several steps over
// tensors of whole and partial quantization blocks and chunk-table boundaries, float32/bfloat16/float16
// gradients, with and without a weight copy, over bitsandbytes' maps (CUDA searches them by threshold records) and
// maps too crowded for those (CUDA's searching loop). Both forms take the same float32 operations in the same order
// and pick the reference's code (adamw8bit.h) for every value, so the codes must agree exactly.
import assert from 'node:assert/strict';
import type { AdamW8bitItem } from '../../src/engine/engine.js';
import type { DType } from '../../src/tensor/dtype.js';
import { adamw8bitMaps } from '../../src/optim/adamw8bit-map.js';
import { adamw8bitSlotSizes } from '../../src/optim/adamw8bit.js';
import { crowdedQuantMaps } from '../helpers/quant-maps.js';
import { Twins, assertClose, cpu, gpu, gpuTest, read, type Twin } from './harness.js';
import { adamwTestArgs } from '../helpers/adamw-args.js';

/** The codes of an int32 twin as bytes, per side. */
function codes(t: Twin, count: number): { cpu: Uint8Array; gpu: Uint8Array } {
  const { cpu: c, gpu: g } = read(t);
  const bytes = (x: ArrayLike<number>) => new Uint8Array(Int32Array.from(x).buffer, 0, count);
  return { cpu: bytes(c), gpu: bytes(g) };
}

for (const [mapName, maps] of [
  ['bitsandbytes maps (the branch-free search)', adamw8bitMaps()],
  ['crowded maps (the searching loop)', crowdedQuantMaps()],
] as const) {
  gpuTest(`adamw8bitMany, ${mapName}: the CUDA and CPU forms agree over several steps`, () => {
    const t = new Twins(53);
    try {
      for (const [gradDtype, copyDtype] of [
        ['bfloat16', 'bfloat16'],
        ['float32', null],
        ['float16', 'float16'],
      ] as [DType, DType | null][]) {
        // 65,536 elements per chunk-table entry on CUDA: 1 << 17 spans two, 70001 ends mid-block.
        const tensors = [1, 255, 257, 4099, 70001, 1 << 17].map((count) => {
          const { codeWords, blocks } = adamw8bitSlotSizes(count);
          return {
            count,
            param: t.random('float32', count),
            mCodes: t.from('int32', new Int32Array(codeWords)),
            vCodes: t.from('int32', new Int32Array(codeWords)),
            mAbsmax: t.from('float32', new Float32Array(blocks)),
            vAbsmax: t.from('float32', new Float32Array(blocks)),
            copy: copyDtype ? t.output(copyDtype, count) : null,
          };
        });
        for (let step = 1; step <= 3; step++) {
          const grads = tensors.map((x) => t.random(gradDtype, x.count, 0.01 * step));
          const args = adamwTestArgs(step, 0.5);
          for (const side of ['cpu', 'gpu'] as const) {
            const items: AdamW8bitItem[] = tensors.map((x, i) => ({
              param: x.param[side],
              grad: grads[i]![side],
              mCodes: x.mCodes[side],
              vCodes: x.vCodes[side],
              mAbsmax: x.mAbsmax[side],
              vAbsmax: x.vAbsmax[side],
              count: x.count,
              shadow: x.copy ? x.copy[side] : null,
            }));
            (side === 'cpu' ? cpu() : gpu()).adamw8bitMany(items, maps, args);
          }
        }
        tensors.forEach((x, i) => {
          const label = `adamw8bitMany grad ${gradDtype}${copyDtype ? `, ${copyDtype} copy` : ''} tensor ${i}`;
          assertClose(`${label} weights`, x.param, 1e-6);
          assertClose(`${label} m absmax`, x.mAbsmax, 1e-6);
          assertClose(`${label} v absmax`, x.vAbsmax, 1e-6);
          if (x.copy) assertClose(`${label} copy`, x.copy, 1e-2);
          for (const [name, twin] of [
            ['m', x.mCodes],
            ['v', x.vCodes],
          ] as const) {
            const { cpu: c, gpu: g } = codes(twin, x.count);
            const differ: string[] = [];
            for (let e = 0; e < x.count; e++) if (c[e] !== g[e]) differ.push(`${e}: ${g[e]} (CUDA) vs ${c[e]} (CPU)`);
            assert.equal(differ.length, 0, `${label}: ${differ.length} ${name} codes differ (${differ.slice(0, 4)})`);
          }
        });
      }
    } finally {
      t.dispose();
    }
  });
}
