// Model-driven compression: exact round trips (offline checkpoint and online), the code length
// against the model's own cross-entropy, thread-count independence, and clear errors.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/autograd/grad-mode.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { resolveConfig } from '../../src/model/config.js';
import { presetInput } from '../../src/model/presets.js';
import { AdamW } from '../../src/optim/adamw.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import { saveCheckpoint } from '../../src/train/run-checkpoint.js';
import {
  compressBytes,
  decompressBytes,
  engineIdentity,
  loadCheckpointModel,
  readHeader,
  type CodingModel,
} from '../../src/compress/index.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CONTEXT = 64;
const OVERLAP = 16;
const enc = new TextEncoder();

function andromeda(args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, timeout: 300_000, env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

const prose =
  'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and ' +
  'nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of ' +
  'the world. It is a way I have of driving off the spleen and regulating the circulation. ';

/** A small byte-level model, trained a little on prose so that it predicts better than uniform. */
async function makeCheckpoint(dir: string, seed: number, steps: number): Promise<void> {
  const config = resolveConfig(presetInput('tiny', { maxSeqLen: CONTEXT, depth: 1, dim: 64 }));
  const model = new Andromeda(config, { seed });
  const optimizer = new AdamW(
    model.namedParameters().map(([, p]) => p),
    { lr: 1e-2, weightDecay: 0 },
  );
  const text = enc.encode(prose.repeat(4));
  for (let step = 0; step < steps; step++) {
    const batch = new Int32Array(8 * CONTEXT);
    for (let r = 0; r < 8; r++) {
      const from = (step * 37 + r * 61) % 400; // overlapping windows of the repeated prose
      batch.set(text.subarray(from, from + CONTEXT), r * CONTEXT);
    }
    tidy(() => model.loss(Tensor.fromArray(batch, [8, CONTEXT], 'int32', 'cpu')).backward());
    optimizer.step();
    optimizer.zeroGrad();
  }
  await saveCheckpoint(dir, {
    step: steps,
    modelConfig: config as unknown as Record<string, unknown>,
    weights: model.stateDict(),
    tokenizer: new ByteTokenizer(),
    trainer: { family: 'andromeda' },
  });
  optimizer.dispose();
  model.dispose();
}

/** Pseudo-random bytes (xorshift32), reproducible. */
function randomBytes(n: number, seed: number): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x & 0xff;
  });
}

function roundTrip(model: CodingModel, data: Uint8Array, maxStreams?: number): Uint8Array {
  const engine = engineIdentity();
  const { file } = compressBytes(data, model, { engine, maxStreams, context: CONTEXT, overlap: OVERLAP });
  const { header, payload } = readHeader(file, 'test.andz');
  assert.deepEqual(decompressBytes(header, payload, model, { engine, name: 'test.andz' }), data);
  return file;
}

describe('andromeda compress / decompress', () => {
  let dir = '';
  let model: CodingModel;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'andromeda-compress-'));
    await makeCheckpoint(join(dir, 'run'), 1, 40);
    await makeCheckpoint(join(dir, 'other'), 2, 1);
    model = await loadCheckpointModel(join(dir, 'run'));
  });

  test('offline: empty, 1 byte, text, code, random bytes and a multi-stream file round-trip exactly', () => {
    const code = 'export function add(a: number, b: number): number {\n  return a + b;\n}\n'.repeat(5);
    const larger = new Uint8Array(9000);
    for (let i = 0; i < larger.length; i += 300)
      larger.set(i % 900 === 0 ? randomBytes(300, i + 1) : enc.encode(prose).subarray(0, 300), i);
    const files = [
      new Uint8Array(0),
      Uint8Array.of(0),
      Uint8Array.of(255),
      enc.encode(prose),
      enc.encode(code),
      randomBytes(300, 9),
    ];
    for (const data of files) roundTrip(model, data);
    const file = roundTrip(model, larger);
    assert.equal(
      readHeader(file, 'larger').header.streams,
      3,
      'the 9000-byte file is coded as 3 streams of 3000 bytes',
    );
  });

  test('the code length is the model’s cross-entropy (full-sequence forward, same windows) within 1%', () => {
    const data = enc.encode(prose.repeat(3));
    const { file } = compressBytes(data, model, { engine: engineIdentity(), context: CONTEXT, overlap: OVERLAP });
    const payloadBits = readHeader(file, 'x').payload.length * 8;
    // The documented windows: the context restarts from the last OVERLAP tokens once it holds CONTEXT.
    const fed = Int32Array.from([256, ...data]);
    let idealBits = 0;
    let start = 0;
    for (let t = 0; t < data.length;) {
      if (t > 0) start = Math.max(0, t + 1 - OVERLAP);
      const end = Math.min(data.length, start + CONTEXT); // predictions t .. end − 1 share this window
      const logits = tidy(() =>
        noGrad(() =>
          model.model.forward(Tensor.fromArray(fed.subarray(start, end), [1, end - start], 'int32', 'cpu')).toArray(),
        ),
      );
      const vocab = model.model.config.vocabSize;
      for (; t < end; t++) {
        const row = (t - start) * vocab;
        let max = -Infinity;
        for (let b = 0; b < 256; b++) max = Math.max(max, logits[row + b]!);
        let sum = 0;
        for (let b = 0; b < 256; b++) sum += Math.exp(logits[row + b]! - max);
        idealBits -= (logits[row + data[t]!]! - max - Math.log(sum)) / Math.LN2;
      }
    }
    const bpb = idealBits / data.length;
    assert.ok(bpb < 6, `the trained model predicts better than uniform (${bpb.toFixed(3)} bits per byte)`);
    assert.ok(
      Math.abs(payloadBits - idealBits) <= 0.01 * idealBits + 64,
      `coded ${payloadBits} bits, model cross-entropy ${idealBits.toFixed(0)} bits`,
    );
  });

  test('a damaged, truncated or foreign file is reported, not decoded into wrong bytes', () => {
    const data = enc.encode(prose);
    const { file } = compressBytes(data, model, { engine: engineIdentity(), context: CONTEXT, overlap: OVERLAP });
    const engine = engineIdentity();
    const decode = (bytes: Uint8Array) => {
      const { header, payload } = readHeader(bytes, 'bad.andz');
      return decompressBytes(header, payload, model, { engine, name: 'bad.andz' });
    };
    const payloadStart = file.length - readHeader(file, 'x').payload.length;
    const payloadFlip = file.slice();
    payloadFlip[payloadStart + 2]! ^= 0x10;
    assert.throws(() => decode(payloadFlip), /bad\.andz is corrupt: the decoded data does not match the CRC32/);
    assert.throws(() => decode(file.subarray(0, payloadStart + 1)), /does not match the CRC32.*truncated/);
    const headerFlip = file.slice();
    headerFlip[20]! ^= 0x01;
    assert.throws(() => decode(headerFlip), /bad\.andz is corrupt: its header does not match its CRC32/);
    assert.throws(() => decode(data), /not an Andromeda compressed file/);
    assert.throws(() => decode(file.subarray(0, 12)), /corrupt or truncated/);
    const { header, payload } = readHeader(file, 'x.andz');
    assert.throws(
      () => decompressBytes(header, payload, model, { engine: 'cpu generic (gemm generic)', name: 'x.andz' }),
      /compressed on the .* engine; this machine computes with cpu generic/,
    );
  });

  test('CLI: a wrong or missing model is named with both hashes before anything is decoded', () => {
    writeFileSync(join(dir, 'in.txt'), prose);
    const c = andromeda(['compress', 'in.txt', 'in.andz', '--model', 'run', '--context', String(CONTEXT)], dir);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /bits per byte/);
    const wrong = andromeda(['decompress', 'in.andz', 'out.txt', '--model', 'other'], dir);
    assert.equal(wrong.status, 1);
    assert.match(
      wrong.stderr,
      new RegExp(
        'compressed with the checkpoint run \\(weights SHA-256 [0-9a-f]{64}\\); ' +
          '--model other is a different model \\(SHA-256 [0-9a-f]{64}\\)',
      ),
    );
    const missing = andromeda(['decompress', 'in.andz', 'out.txt'], dir);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /pass it with --model/);
    const right = andromeda(['decompress', 'in.andz', 'out.txt', '--model', 'run'], dir);
    assert.equal(right.status, 0, right.stderr);
    assert.deepEqual(readFileSync(join(dir, 'out.txt')), readFileSync(join(dir, 'in.txt')));
    const both = andromeda(['compress', 'in.txt', 'x.andz', '--model', 'run', '--online'], dir);
    assert.match(both.stderr, /exactly one of --model <checkpoint> and --online/);
    const streams = andromeda(['compress', 'in.txt', 'x.andz', '--online', '--streams', '0'], dir);
    assert.match(streams.stderr, /andromeda compress: --streams must be a positive integer, got "0"/);
    const mix = andromeda(['compress', 'in.txt', 'x.andz', '--online', '--mix', 'yes'], dir);
    assert.match(mix.stderr, /--mix must be on or off, got yes/);
    const overlap = andromeda(['compress', 'in.txt', 'x.andz', '--online', '--context', '32', '--overlap', '32'], dir);
    assert.match(overlap.stderr, /--overlap must be less than the context \(32\), got 32/);
    const decay = andromeda(['compress', 'in.txt', 'x.andz', '--online', '--lr-decay', '0'], dir);
    assert.match(decay.stderr, /--lr-decay must be an integer from 1 to 10\^9 \(steps\) or off, got "0"/);
    const offline = andromeda(['compress', 'in.txt', 'x.andz', '--model', 'run', '--lr-decay', '100'], dir);
    assert.match(offline.stderr, /--lr-decay applies to --online only/);
  });

  test('CLI online mode: the same file at 1 and 3 threads, decoded at 2 threads, bit for bit', () => {
    const data = new Uint8Array([...enc.encode(prose.repeat(4)), ...randomBytes(200, 5)]);
    writeFileSync(join(dir, 'online.bin'), data);
    const flags = ['--online', '--context', '32', '--overlap', '8', '--lr', '0.01'];
    const one = andromeda(['compress', 'online.bin', 'one.andz', ...flags], dir, { ANDROMEDA_THREADS: '1' });
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /training steps/);
    const three = andromeda(['compress', 'online.bin', 'three.andz', ...flags], dir, { ANDROMEDA_THREADS: '3' });
    assert.equal(three.status, 0, three.stderr);
    assert.deepEqual(readFileSync(join(dir, 'three.andz')), readFileSync(join(dir, 'one.andz')));
    const d = andromeda(['decompress', 'one.andz', 'online.out'], dir, { ANDROMEDA_THREADS: '2' });
    assert.equal(d.status, 0, d.stderr);
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'online.out'))), data);
    // Learning as it codes: the repeated prose costs less than 8 bits per byte.
    const { payload } = readHeader(readFileSync(join(dir, 'one.andz')), 'one.andz');
    assert.ok(payload.length < data.length * 0.8, `${payload.length} bytes coded for ${data.length}`);
  });
});
