// Engine.captureGraph on the CPU engine: the capture runs the function's JavaScript with every kernel skipped (a
// CUDA capture runs none either), each replay runs it for real on the buffers' current contents; copies and waits
// inside it are refused (as a CUDA capture must refuse them) and leave the engine usable; disposal, nesting and
// failing functions behave as documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, getEngine } from '../../src/index.js';
import { sampleTokens, samplingParams, samplingSeeds } from '../../src/ops/sampling.js';

const cpu = getEngine('cpu');

function buffer(values: ArrayLike<number>): Tensor {
  return Tensor.fromArray(values, [values.length], 'float32', 'cpu');
}

test('capture runs no kernel; each replay runs the function on the current contents', () => {
  const x = buffer([1, 2, 3, 4]);
  const y = buffer([0, 0, 0, 0]);
  let runs = 0;
  const graph = cpu.captureGraph(() => {
    runs++;
    cpu.unary('scale', x.dense(), y.dense(), 4, 10);
    cpu.unary('addScalar', x.dense(), x.dense(), 4, 1);
  });
  assert.equal(runs, 1, "the capture ran the function's JavaScript");
  assert.deepEqual(Array.from(y.toArray()), [0, 0, 0, 0], 'but none of its kernels');
  assert.deepEqual(Array.from(x.toArray()), [1, 2, 3, 4]);
  graph.replay();
  graph.replay();
  assert.equal(runs, 3);
  assert.deepEqual(Array.from(y.toArray()), [20, 30, 40, 50]);
  assert.deepEqual(Array.from(x.toArray()), [3, 4, 5, 6]);
  cpu.upload(x.storage.handle, 0, Float32Array.of(-1, -2, -3, -4));
  graph.replay();
  assert.deepEqual(Array.from(y.toArray()), [-10, -20, -30, -40], 'replay reads what was uploaded since');
  graph.dispose();
  x.dispose();
  y.dispose();
});

test('a replayed sampling step draws fresh numbers: the step counters advance on the device', () => {
  const vocab = 64,
    rows = 2;
  const logits = Tensor.fromArray(new Float32Array(rows * vocab), [rows, vocab], 'float32', 'cpu');
  const params = samplingParams([{ temperature: 1 }, { temperature: 1 }]);
  const seeds = samplingSeeds([3, 3]);
  const steps = Tensor.fromArray(Int32Array.of(0, 5), [rows], 'int32', 'cpu');
  const last: { ids: Tensor | null } = { ids: null };
  const graph = cpu.captureGraph(() => {
    last.ids?.dispose();
    last.ids = sampleTokens(logits, { params, seeds, steps }).ids;
  });
  assert.deepEqual(Array.from(steps.toArray()), [0, 5], 'the capture drew nothing');
  const drawn: number[][] = [];
  for (let i = 0; i < 7; i++) {
    graph.replay();
    drawn.push(Array.from(last.ids!.toArray()));
  }
  assert.deepEqual(Array.from(steps.toArray()), [7, 12], 'one draw per replay, as on CUDA');
  assert.ok(new Set(drawn.map((d) => d[0])).size > 1, `row 0 drew ${drawn.map((d) => d[0])}`);
  assert.deepEqual(drawn[5]![0], drawn[0]![1], 'row 0 at step 5 repeats row 1 at step 5 (same seed)');
  graph.dispose();
  for (const t of [logits, params, seeds, steps, last.ids!]) t.dispose();
});

test('copies and waits inside the function throw, naming the call; the engine stays usable', () => {
  const x = buffer([1, 2]);
  const cases: [string, () => void, RegExp][] = [
    ['download', () => x.toArray(), /download \(a device→host read\) inside captureGraph/],
    ['upload', () => cpu.upload(x.storage.handle, 0, Float32Array.of(5, 6)), /upload \(a host→device copy\) inside/],
    ['synchronize', () => cpu.synchronize(), /synchronize \(a wait for the device\) inside captureGraph/],
    ['sumOfSquares', () => cpu.sumOfSquares(x.dense(), 2), /sumOfSquares \(a device→host read\) inside/],
  ];
  for (const [name, call, message] of cases) {
    assert.throws(() => cpu.captureGraph(call), message, name);
    // After the refusal: copies work again, and so does a new capture.
    assert.deepEqual(Array.from(x.toArray()), [1, 2], `${name}: engine usable after`);
    const g = cpu.captureGraph(() => cpu.unary('scale', x.dense(), x.dense(), 2, 1));
    g.dispose();
  }
  // A replay is held to the same rule.
  let readOnReplay = false;
  const graph = cpu.captureGraph(() => {
    if (readOnReplay) x.toArray();
  });
  readOnReplay = true;
  assert.throws(() => graph.replay(), /download \(a device→host read\) inside captureGraph/);
  assert.deepEqual(Array.from(x.toArray()), [1, 2]);
  graph.dispose();
  x.dispose();
});

test('dispose, nesting, failing functions and bad arguments', () => {
  const graph = cpu.captureGraph(() => {});
  graph.dispose();
  assert.throws(() => graph.replay(), /cpu graph: replay\(\) after dispose\(\)/);
  graph.dispose(); // twice: nothing happens

  assert.throws(
    () => cpu.captureGraph(() => cpu.captureGraph(() => {})),
    /captureGraph: called inside another graph's function \(captures do not nest\)/,
  );
  assert.throws(
    () =>
      cpu.captureGraph(() => {
        throw new Error('the function failed');
      }),
    /the function failed/,
  );
  const after = cpu.captureGraph(() => {});
  after.replay();
  after.dispose();
  assert.throws(() => cpu.captureGraph(42 as unknown as () => void), /captureGraph: fn must be a function/);
});
