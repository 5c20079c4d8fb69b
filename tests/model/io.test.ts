import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdtempSync,
  rmSync,
  readFileSync,
  writeFileSync,
  truncateSync,
  statSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { readSafetensors, writeSafetensors, SafetensorsReader } from '../../src/io/safetensors.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { presetInput } from '../../src/model/presets.js';
import { loadCheckpoint, saveCheckpoint, readCheckpointConfig } from '../../src/model/weights-file.js';
import { configFromXTransformers, importXTransformers } from '../../src/model/xtransformers-import.js';
import { FIXTURES, expectedOf, fixtureDir, randomTokens, relativeError, values } from './helpers.js';

const made: string[] = [];
const temp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'andromeda-io-'));
  made.push(d);
  return d;
};
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const andromeda = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('safetensors: every dtype round-trips with metadata; int64 reads as int32', () => {
  const dir = temp();
  const path = join(dir, 'a.safetensors');
  tidy(() => {
    const tensors = {
      f32: Tensor.fromArray([1.5, -2, 3.25, 0], [2, 2], 'float32'),
      f64: Tensor.fromArray([Math.PI, Math.E], [2], 'float64'),
      bf16: Tensor.fromArray([1, 0.5, -8], [3], 'bfloat16'),
      f16: Tensor.fromArray([0.25, 65504], [1, 2], 'float16'),
      i32: Tensor.fromArray([7, -9, 2147483647], [3], 'int32'),
      empty: Tensor.fromArray([], [0, 4], 'float32'),
      scalar: Tensor.fromArray([42], [], 'float32'),
    };
    writeSafetensors(path, tensors, { note: 'hello' });
    const back = readSafetensors(path);
    assert.deepEqual(back.metadata, { note: 'hello' });
    for (const [name, t] of Object.entries(tensors)) {
      const r = back.tensors.get(name)!;
      assert.equal(r.dtype, t.dtype, name);
      assert.deepEqual(r.shape, t.shape, name);
      assert.deepEqual([...r.toArray()], [...t.toArray()], name);
    }
    for (const t of back.tensors.values()) t.dispose();
  });
  // An int64 tensor written by hand (as PyTorch saves token ids).
  const header = Buffer.from(JSON.stringify({ tokens: { dtype: 'I64', shape: [1, 3], data_offsets: [0, 24] } }));
  const body = Buffer.from(new BigInt64Array([5n, 6n, 7n]).buffer);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(join(dir, 'i64.safetensors'), Buffer.concat([length, header, body]));
  tidy(() => {
    const t = readSafetensors(join(dir, 'i64.safetensors')).tensors.get('tokens')!;
    assert.equal(t.dtype, 'int32');
    assert.deepEqual([...t.toArray()], [5, 6, 7]);
  });
});

test('safetensors: corrupt and truncated files fail with the file name and the problem', () => {
  const dir = temp();
  const good = join(dir, 'good.safetensors');
  tidy(() => writeSafetensors(good, { w: Tensor.fromArray([1, 2, 3, 4], [2, 2]) }));
  const variant = (name: string, edit: (path: string) => void): string => {
    const path = join(dir, name);
    copyFileSync(good, path);
    edit(path);
    return path;
  };
  const truncated = variant('truncated.safetensors', (p) => truncateSync(p, statSync(p).size - 3));
  assert.throws(() => SafetensorsReader.open(truncated), new RegExp(`${truncated}: tensor 'w': truncated`));
  const tiny = variant('tiny.safetensors', (p) => truncateSync(p, 5));
  assert.throws(() => SafetensorsReader.open(tiny), /tiny\.safetensors: file is 5 bytes, too short/);
  const headerCut = variant('header.safetensors', (p) => truncateSync(p, 20));
  assert.throws(() => SafetensorsReader.open(headerCut), /header\.safetensors: truncated: the header needs \d+ bytes/);
  const badJson = variant('json.safetensors', (p) => {
    const b = readFileSync(p);
    b[9] = 0x7b;
    b[10] = 0x7b;
    writeFileSync(p, b);
  });
  assert.throws(() => SafetensorsReader.open(badJson), /json\.safetensors: the header is not valid JSON/);
  const huge = variant('huge.safetensors', (p) => {
    const b = readFileSync(p);
    b.writeBigUInt64LE(1n << 40n, 0);
    writeFileSync(p, b);
  });
  assert.throws(() => SafetensorsReader.open(huge), /huge\.safetensors: header length \d+ is implausibly large/);
  const write = (name: string, header: object, dataBytes: number): string => {
    const path = join(dir, name);
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(path, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
    return path;
  };
  assert.throws(
    () =>
      SafetensorsReader.open(
        write('size.safetensors', { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 12),
      ),
    /tensor 'w': data_offsets \[0, 12\] hold 12 bytes but F32 \[2, 2\] needs 16/,
  );
  assert.throws(
    () =>
      SafetensorsReader.open(write('dtype.safetensors', { w: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, 8)),
    /unsupported dtype "C64"/,
  );
  assert.throws(
    () =>
      SafetensorsReader.open(
        write(
          'overlap.safetensors',
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          12,
        ),
      ),
    /'a' \[0, 8\) and 'b' \[4, 12\) overlap/,
  );
  assert.throws(() => SafetensorsReader.open(join(dir, 'absent.safetensors')), /absent\.safetensors: cannot open/);
});

test('checkpoint: save and load round-trip the config and every parameter exactly', () => {
  const dir = join(temp(), 'ckpt');
  const model = new Andromeda({ ...presetInput('tiny'), qkNorm: true, qkNormDimScale: true }, { seed: 12 });
  saveCheckpoint(dir, model);
  const { model: loaded, origin } = loadCheckpoint(dir);
  assert.equal(origin, null);
  assert.deepEqual(loaded.config, model.config);
  const a = new Map(model.namedParameters());
  for (const [name, t] of loaded.namedParameters()) assert.deepEqual(values(t), values(a.get(name)!), name);
  const ids = randomTokens(12, 257, 1);
  const logits = (m: Andromeda) => tidy(() => noGrad(() => values(m.forward(Tensor.fromArray(ids, [1, 12], 'int32')))));
  assert.deepEqual(logits(loaded), logits(model));
  // A bfloat16 load converts on the way in.
  const { model: half } = loadCheckpoint(dir, { dtype: 'bfloat16' });
  assert.equal(half.embedding.weight.dtype, 'bfloat16');
  half.dispose();
  loaded.dispose();
  // Tampered weights: the error lists what does not match.
  const other = new Andromeda({ ...presetInput('tiny'), qkNorm: true, qkNormDimScale: true, dim: 64 }, { seed: 1 });
  const tampered = new Map(other.stateDict());
  tampered.delete('logits.bias');
  writeSafetensors(join(dir, 'model.safetensors'), tampered);
  assert.throws(
    () => loadCheckpoint(dir),
    (e: Error) =>
      /missing \(1\): logits\.bias/.test(e.message) &&
      /wrong shape \(\d+\): embedding\.weight: model \[257, 128\], file \[257, 64\]/.test(e.message),
  );
  other.dispose();
  model.dispose();
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ wrapper: {}, decoder: {} }));
  assert.throws(() => readCheckpointConfig(dir), /an x-transformers checkpoint: convert it with `andromeda convert`/);
});

for (const name of FIXTURES) {
  test(
    `andromeda convert + score on ${name} ` + `reproduce the fixture's logits, loss and gradients by original names`,
    () => {
      const out = temp();
      const converted = andromeda('convert', fixtureDir(name), join(out, 'ckpt'));
      assert.equal(converted.status, 0, converted.stderr);
      assert.match(converted.stdout, /converted .* parameters/);
      assert.equal(readCheckpointConfig(join(out, 'ckpt')).origin?.format, 'x-transformers-1.20');
      const scores = join(out, 'scores.safetensors');
      const scored = andromeda('score', join(out, 'ckpt'), join(fixtureDir(name), 'io.safetensors'), scores, '--grads');
      assert.equal(scored.status, 0, scored.stderr);
      const ours = readSafetensors(scores).tensors;
      const reference = readSafetensors(join(fixtureDir(name), 'io.safetensors')).tensors;
      try {
        assert.ok(relativeError(values(ours.get('logits')!), values(reference.get('logits')!)) < 1e-5);
        assert.equal(ours.get('loss')!.dtype, 'float64');
        assert.ok(Math.abs(ours.get('loss')!.item() - expectedOf(name).loss) < 1e-6);
        const gradNames = [...reference.keys()].filter((k) => k.startsWith('grad.')).sort();
        assert.deepEqual([...ours.keys()].filter((k) => k.startsWith('grad.')).sort(), gradNames);
        for (const g of gradNames) {
          assert.deepEqual(ours.get(g)!.shape, reference.get(g)!.shape, g);
          assert.ok(relativeError(values(ours.get(g)!), values(reference.get(g)!)) < 1e-4, g);
        }
      } finally {
        for (const t of [...ours.values(), ...reference.values()]) t.dispose();
      }
    },
  );
}

test('convert reports unsupported arguments, ignored ones, and missing/unexpected/mis-shaped tensors', () => {
  assert.throws(
    () =>
      configFromXTransformers({
        wrapper: { num_tokens: 10, max_seq_len: 8 },
        decoder: { dim: 8, depth: 1, heads: 2, macaron: true, rotary_xpos: true },
      }),
    /cannot import this x-transformers model:\n {2}- decoder\.macaron = true is not supported/,
  );
  assert.throws(
    () =>
      configFromXTransformers({ wrapper: { num_tokens: 10, max_seq_len: 8 }, decoder: { dim: 8, depth: 1, heads: 2 } }),
    /absolute position embedding/,
  );
  const { warnings } = configFromXTransformers({
    wrapper: { num_tokens: 10, max_seq_len: 8, use_abs_pos_emb: false },
    decoder: { dim: 8, depth: 1, heads: 2, dim_head: 128, attn_dropout: 0.1 },
  });
  assert.deepEqual(warnings, [
    'decoder.dim_head is not an argument of x-transformers 1.20 (it ignores it, and so do we)',
    'decoder.attn_dropout = 0.1 only affects training; it is not part of the imported model',
  ]);
  // A weights file that lost one tensor, gained one and has one of the wrong shape.
  const dir = temp();
  copyFileSync(join(fixtureDir('orca-tiny'), 'config.json'), join(dir, 'config.json'));
  tidy(() => {
    const weights = readSafetensors(join(fixtureDir('orca-tiny'), 'weights.safetensors')).tensors;
    weights.delete('to_logits.bias');
    weights.set('surprise', Tensor.fromArray([1], [1]));
    weights.set('attn_layers.layers.0.1.fn.to_k.weight', Tensor.fromArray(new Float32Array(64 * 32), [32, 64]));
    writeSafetensors(join(dir, 'weights.safetensors'), weights);
  });
  assert.throws(
    () => importXTransformers(dir),
    (e: Error) =>
      /missing \(1\): to_logits\.bias/.test(e.message) &&
      /unexpected \(1\): surprise/.test(e.message) &&
      /attn_layers\.layers\.0\.1\.fn\.to_k\.weight: config gives \[64, 64\], file has \[32, 64\]/.test(e.message),
  );
  const result = andromeda('convert', dir, join(dir, 'out'));
  assert.equal(result.status, 1);
  assert.match(result.stderr, /andromeda convert: .*weights\.safetensors: the tensors do not match/);
  mkdirSync(join(dir, 'nonempty'));
  writeFileSync(join(dir, 'nonempty', 'x'), '');
  assert.match(
    andromeda('convert', fixtureDir('orca-tiny'), join(dir, 'nonempty')).stderr,
    /is not empty \(use --force/,
  );
  assert.match(
    andromeda('score', '--help').stdout,
    /Usage: andromeda score <checkpoint> <in\.safetensors> <out\.safetensors>/,
  );
  assert.match(andromeda('convert', 'only-one').stderr, /expected <source dir> and <out dir>/);
});
