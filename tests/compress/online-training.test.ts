// The online model's training settings: the learning-rate decay schedule, its place in the header
// (and in the model's hash, so a file whose settings were edited is refused), files written before
// the decay existed still naming the same starting model, and a round trip with the decay on.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import {
  buildOnlineModel,
  compressBytes,
  decompressBytes,
  engineIdentity,
  onlineModelSpec,
  readHeader,
  type OnlineModelSpec,
} from '../../src/compress/index.js';
import { onlineLearningRate } from '../../src/compress/stream-predictor.js';

const enc = new TextEncoder();
const prose =
  'Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and ' +
  'nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of ' +
  'the world. ';

describe('online training settings', () => {
  test('the learning rate decays as lr / (1 + step / lrDecaySteps), and stays put without a decay', () => {
    const decaying = { learningRate: 0.004, lrDecaySteps: 100 };
    assert.equal(onlineLearningRate(decaying, 0), 0.004);
    assert.equal(onlineLearningRate(decaying, 100), 0.002);
    assert.equal(onlineLearningRate(decaying, 300), 0.001);
    for (const step of [0, 1, 1000, 1e6]) assert.equal(onlineLearningRate({ learningRate: 0.004 }, step), 0.004);
  });

  // That a spec without a decay still names the models of files written before the decay existed is checked on
  // such files themselves (./compat.test.ts).
  test('a decay is recorded in the spec and changes its hash; no decay records nothing', () => {
    const spec = onlineModelSpec({ preset: 'tiny', seed: 7, learningRate: 5e-3 });
    assert.equal('lrDecaySteps' in spec, false);
    const decaying = onlineModelSpec({ preset: 'tiny', seed: 7, learningRate: 5e-3, lrDecaySteps: 100 });
    assert.notEqual(decaying.sha256, spec.sha256);
    assert.match(decaying.name, /lr decay 100 steps/);
  });

  test('an invalid decay is refused by name, from the flag and from a header', () => {
    for (const bad of [0, -3, 1.5, Number.NaN])
      assert.throws(
        () => onlineModelSpec({ preset: 'tiny', seed: 0, learningRate: 1e-3, lrDecaySteps: bad }),
        /--lr-decay must be an integer from 1 to 10\^9/,
      );
    const spec = onlineModelSpec({ preset: 'tiny', seed: 0, learningRate: 1e-3, lrDecaySteps: 50 });
    const edited = { ...spec, lrDecaySteps: 'fast' } as unknown as OnlineModelSpec;
    assert.throws(() => buildOnlineModel(edited), /lrDecaySteps must be an integer/);
    // A valid but different value does not match the hash the file records.
    assert.throws(() => buildOnlineModel({ ...spec, lrDecaySteps: 51 }), /SHA-256 differs/);
  });

  test('the decay changes the coding, is recorded in the header, and round-trips exactly', () => {
    const data = enc.encode(prose.repeat(6));
    const engine = engineIdentity();
    const code = (lrDecaySteps?: number) => {
      const model = buildOnlineModel(onlineModelSpec({ preset: 'tiny', seed: 1, learningRate: 0.01, lrDecaySteps }));
      try {
        return compressBytes(data, model, { engine, context: 32, overlap: 8 }).file;
      } finally {
        model.dispose();
      }
    };
    const decayed = code(2);
    const constant = code(undefined);
    assert.notDeepEqual(decayed, constant);
    const { header, payload } = readHeader(decayed, 'decayed.andz');
    assert.equal((header.model as OnlineModelSpec).lrDecaySteps, 2);
    const decoding = buildOnlineModel(header.model as OnlineModelSpec);
    try {
      assert.deepEqual(decompressBytes(header, payload, decoding, { engine, name: 'decayed.andz' }), data);
    } finally {
      decoding.dispose();
    }
  });

  test("the mixed run's model-alone figure is the model-alone code length (same model, same steps)", () => {
    const data = enc.encode(prose.repeat(8));
    const engine = engineIdentity();
    const code = (contextMixing: boolean) => {
      const model = buildOnlineModel(
        onlineModelSpec({ preset: 'tiny', seed: 2, learningRate: 0.01, lrDecaySteps: 20 }),
      );
      try {
        return compressBytes(data, model, { engine, context: 32, overlap: 8, contextMixing });
      } finally {
        model.dispose();
      }
    };
    const mixed = code(true);
    const alone = code(false);
    const aloneBits = readHeader(alone.file, 'alone.andz').payload.length * 8;
    assert.equal(mixed.stats.trainingSteps, alone.stats.trainingSteps);
    // The quantised distribution costs a little more than the exact one; the range coder adds a few bytes.
    assert.ok(
      Math.abs(aloneBits - mixed.stats.modelBits) <= 0.01 * aloneBits + 64,
      `model alone coded in ${aloneBits} bits, ${mixed.stats.modelBits.toFixed(0)} by the mixed run's count`,
    );
    assert.ok(Math.abs(alone.stats.modelBits - aloneBits) <= 64, `${alone.stats.modelBits} vs ${aloneBits}`);
    assert.ok(mixed.stats.modelBits < 6 * data.length, 'the model learned the repeated prose');
  });
});
