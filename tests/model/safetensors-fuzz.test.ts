// Hostile safetensors files: a valid file mutated at random — bytes flipped in the length prefix, the JSON header
// and the data, cut short or grown, and header fields replaced with hostile values (negative, fractional, huge or
// non-numeric shapes and offsets, unknown dtypes, overlapping ranges). Every open and every read either returns
// tensors whose sizes match their headers or throws a SafetensorsError naming the file, and never allocates for a
// size the file does not hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { SafetensorsError, SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';
import { xorshift32 } from '../helpers/xorshift.js';

const HOSTILE_NUMBERS: unknown[] = [-1, 0.5, 2 ** 53, 2 ** 62, -(2 ** 31), 1e308, NaN, '8', null, [], {}, true];
const HOSTILE_DTYPES: unknown[] = ['C64', 'f32', '', 'F8_E4M3', 5, null, 'BOOL', 'I64', 'U8'];

test('300 mutations of a safetensors file: each opens and reads correctly or fails with a SafetensorsError', () => {
  const dir = mkdtempSync(join(tmpdir(), 'andromeda-safetensors-fuzz-'));
  try {
    const good = join(dir, 'good.safetensors');
    tidy(() =>
      writeSafetensors(good, {
        a: Tensor.fromArray([1, 2, 3, 4, 5, 6], [2, 3]),
        b: Tensor.fromArray([7, 8], [2], 'bfloat16'),
        c: Tensor.fromArray([9, 10, 11], [3], 'int32'),
      }),
    );
    const bytes = readFileSync(good);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
    const data = bytes.subarray(8 + headerLength);
    const random = xorshift32(2024);
    const int = (n: number): number => Math.floor(random() * n);
    const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
    const withHeader = (h: unknown, body: Buffer = data): Buffer => {
      const json = Buffer.from(JSON.stringify(h));
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([prefix, json, body]);
    };
    const mutations: ((b: Buffer) => Buffer)[] = [
      (b) => {
        const out = Buffer.from(b);
        for (let i = 0; i < 1 + int(4); i++) out[int(out.length)] ^= 1 << int(8);
        return out;
      },
      (b) => {
        const out = Buffer.from(b);
        out.writeBigUInt64LE(BigInt(pick([0, 1, 7, headerLength - 1, headerLength + 1, 2 ** 31, 2 ** 40])), 0);
        return out;
      },
      (b) => b.subarray(0, int(b.length)),
      (b) => Buffer.concat([b, Buffer.alloc(1 + int(64), 0x41)]),
      () => {
        const h = structuredClone(header) as Record<string, Record<string, unknown>>;
        const name = pick(['a', 'b', 'c']);
        const field = pick(['shape', 'data_offsets', 'dtype']);
        const entry = h[name]!;
        if (field === 'dtype') entry.dtype = pick(HOSTILE_DTYPES);
        else {
          const value = [...(entry[field] as unknown[])];
          value[int(Math.max(1, value.length))] = pick(HOSTILE_NUMBERS);
          entry[field] = pick([value, [...value, 3], value.slice(1), pick(HOSTILE_NUMBERS)]);
        }
        return withHeader(h);
      },
      () => {
        const h = structuredClone(header) as Record<string, Record<string, unknown>>;
        // Ranges that overlap, leave gaps, or point past the data.
        h.c!.data_offsets = pick([
          [0, 12],
          [20, 32],
          [data.length - 4, data.length + 8],
        ]);
        return withHeader(h);
      },
      () => withHeader(pick([[], null, 'x', 7, { a: null }, { __proto__: { a: 1 } }, { a: [] }])),
    ];
    let opened = 0,
      refused = 0;
    for (let i = 0; i < 300; i++) {
      const path = join(dir, `m${i}.safetensors`);
      writeFileSync(path, pick(mutations)(bytes));
      let reader: SafetensorsReader | null = null;
      try {
        reader = SafetensorsReader.open(path);
        for (const name of reader.names) {
          const entry = reader.entry(name);
          const t = reader.readTensor(name);
          assert.deepEqual(t.shape, entry.shape, `m${i}: ${name}`);
          t.dispose();
        }
        opened++;
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(e instanceof SafetensorsError, `m${i}: ${String(e)}`);
        assert.ok((e as Error).message.includes(path), `m${i}: the error names the file: ${(e as Error).message}`);
        refused++;
      } finally {
        reader?.close();
      }
    }
    assert.ok(opened >= 10 && refused >= 100, `both sides exercised: ${opened} opened, ${refused} refused`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
