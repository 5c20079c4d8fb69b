// When packed documents may go to the fused kernels as index positions (src/ops/attention-document-positions.ts):
// exactly when every token's position is its index plus a constant of its document, on both sides, per batch row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../src/engine/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { documentPositionsAreIndexShifts, type DocumentLayout } from '../../src/ops/attention-document-positions.js';
import { positionsFromSegments } from '../../src/model/context.js';

/** Segment ids of documents of the given lengths, one after the other (ids 1, 2, 3, …). */
function packed(lengths: number[]): Int32Array {
  return Int32Array.from(lengths.flatMap((n, d) => Array.from({ length: n }, () => d + 1)));
}

/** Self-attention over one packed row layout (the training step's call): the same arrays on both sides. */
function selfLayout(segments: Int32Array, positions: Int32Array | null, batch = 1): DocumentLayout {
  const n = segments.length / batch;
  return {
    batch,
    queryLen: n,
    keyLen: n,
    queryOffset: 0,
    queryPositions: positions,
    keyPositions: positions,
    querySegments: segments,
    keySegments: segments,
  };
}

test('positions that restart at each document are index shifts; positions that skip inside one are not', () => {
  const seg = packed([1, 7, 64, 65, 3]);
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, positionsFromSegments(seg, 1, seg.length))), true);
  // Plain index positions given explicitly: shift 0 everywhere.
  assert.equal(
    documentPositionsAreIndexShifts(
      selfLayout(
        seg,
        Int32Array.from(seg, (_, t) => t),
      ),
    ),
    true,
  );
  // Any constant offset per document, e.g. documents continuing earlier text.
  const continued = positionsFromSegments(seg, 1, seg.length).map((p, t) => p + 1000 * seg[t]!);
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, continued)), true);
  const gap = positionsFromSegments(seg, 1, seg.length);
  gap[40] = gap[40]! + 1; // one token inside the 64-token document moves
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, gap)), false);
});

test('an id used by two separate runs needs one shift for both', () => {
  const seg = Int32Array.from([1, 1, 2, 2, 2, 1, 1]);
  // Positions restarting per run: the two runs of id 1 have shifts 0 and −5, and their pairs would differ.
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, Int32Array.from([0, 1, 0, 1, 2, 0, 1]))), false);
  // Positions continuing through id 1's runs (0, 1, then 5, 6): one shift.
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, Int32Array.from([0, 1, 0, 1, 2, 5, 6]))), true);
});

test('batch rows are independent: an id may have a different shift in another row', () => {
  const seg = Int32Array.from([1, 1, 2, 2, /* row 1 */ 1, 1, 1, 2]);
  const positions = positionsFromSegments(seg, 2, 4);
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, positions, 2)), true);
  positions[7] = 5; // row 1's last document: one token, any position
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, positions, 2)), true);
  positions[6] = 9; // now row 1's first document is not consecutive
  assert.equal(documentPositionsAreIndexShifts(selfLayout(seg, positions, 2)), false);
});

test('queries after earlier keys: query i sits at index queryOffset + i, and both sides must agree', () => {
  const keySeg = packed([4, 6]),
    keyPos = positionsFromSegments(keySeg, 1, 10);
  const layout = (queryPositions: Int32Array | null): DocumentLayout => ({
    batch: 1,
    queryLen: 3,
    keyLen: 10,
    queryOffset: 7,
    queryPositions,
    keyPositions: keyPos,
    querySegments: keySeg.slice(7),
    keySegments: keySeg,
  });
  assert.equal(documentPositionsAreIndexShifts(layout(keyPos.slice(7))), true);
  // Keys of the second document have position − index = −4; these queries −3.
  assert.equal(documentPositionsAreIndexShifts(layout(Int32Array.from([4, 5, 6]))), false);
  // Queries without positions (index positions) against keys whose second document restarts at 0: shifts differ.
  assert.equal(documentPositionsAreIndexShifts(layout(null)), false);
});

test('positions or segments on the device only are not read (that would wait for the device): not index shifts', () => {
  const seg = packed([3, 5]);
  const positions = positionsFromSegments(seg, 1, 8);
  const onDevice = Tensor.fromArray(positions, [8], 'int32', 'cpu');
  try {
    assert.equal(documentPositionsAreIndexShifts({ ...selfLayout(seg, positions), keyPositions: onDevice }), false);
    const both = { host: positions, device: onDevice };
    assert.equal(documentPositionsAreIndexShifts({ ...selfLayout(seg, positions), keyPositions: both }), true);
  } finally {
    onDevice.dispose();
  }
});
