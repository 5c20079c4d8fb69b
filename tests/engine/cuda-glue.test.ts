// The CUDA addon's generated glue refuses junk before any CUDA call, with or without a GPU: every kernel
// of the declaration, called with random junk and handles the engine never issued, throws a JavaScript
// Error (no device is touched: no buffer argument resolves). Skipped where the CUDA engine is not built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { requireAddon } from '../../src/engine/native-engine.js';

type Fn = (...args: unknown[]) => unknown;
interface Param {
  name: string;
  kind: string;
  fields?: Param[];
}
interface Kernel {
  name: string;
  engines: string[];
  params: Param[];
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const addonFile = requireAddon<Record<string, Fn>>('andromeda_cuda.node');

test('every CUDA kernel binding throws an Error for junk arguments and never-issued handles', async (t) => {
  if (!existsSync(addonFile.path)) {
    t.skip(`the CUDA engine is not built (${addonFile.path})`);
    return;
  }
  const addon = addonFile.load();
  const { KERNELS } = (await import(pathToFileURL(join(root, 'native', 'abi', 'kernels.mjs')).href)) as {
    KERNELS: Kernel[];
  };
  let state = 7;
  const random = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const junk: unknown[] = [
    0,
    1,
    2,
    -1,
    1.5,
    NaN,
    Infinity,
    2 ** 53,
    0x7ffd12345678,
    16777217,
    '1',
    null,
    undefined,
    {},
    [],
    [1, 2],
    true,
  ];
  const value = (p: Param): unknown => {
    if (p.kind === 'object')
      return random() < 0.8
        ? Object.fromEntries(
            (p.fields ?? []).flatMap((f) => [
              [f.name, value(f)],
              [`${f.name}Offset`, pick(junk)],
            ]),
          )
        : pick(junk);
    // An empty list is a legal no-op: lists always carry one (junk) item here.
    if (p.kind === 'list')
      return [
        Object.fromEntries(
          (p.fields ?? []).flatMap((f) => [
            [f.name, value(f)],
            [`${f.name}Offset`, 0],
          ]),
        ),
      ];
    if (p.kind === 'buffer') return pick([16777217, 0x7ffd12345678, 33554434, 1]);
    if (p.kind === 'flag') return random() < 0.8 ? random() < 0.5 : pick(junk);
    if (p.kind === 'ints') return random() < 0.8 ? [1, 2] : pick(junk);
    return random() < 0.7 ? Math.floor(random() * 3) : pick(junk);
  };
  let calls = 0;
  for (const k of KERNELS.filter((kernel) => kernel.engines.includes('cuda'))) {
    for (let i = 0; i < 200; i++) {
      const args = k.params
        .filter((p) => p.kind !== 'derived')
        .flatMap((p) => (p.kind === 'buffer' ? [value(p), 0] : [value(p)]));
      calls++;
      assert.throws(() => addon[k.name]!(...args), Error, `${k.name}(${args.map((a) => String(a)).join(', ')})`);
    }
  }
  for (const [name, args] of [
    ['download', [16777217, 0, 1 << 30]],
    ['upload', [16777217, 0, new Uint8Array(4)]],
    ['free', [16777217]],
    ['alloc', [-1]],
    ['alloc', [1.5]],
    ['alloc', [NaN]],
  ] as const) {
    assert.throws(() => addon[name]!(...args), Error, name);
  }
  assert.ok(calls > 1000);
});
