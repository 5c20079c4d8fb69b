// Packed documents: when can a fused kernel use index positions instead of the caller's positions?
//
// Rotary, xPos and ALiBi depend on a (query, key) pair only through p_q − p_k, and with segment ids only pairs of one
// document are visible. If every token's position is its index plus a constant of its document (positions count on
// from each document's start, as `positionsFromSegments` makes them), then p_q − p_k = (queryOffset + i) − j on every
// visible pair, and index positions give the same scores. The CUDA engine's fast paths (the Hopper kernels, the
// pre-pass transform) take index positions only; this check lets packed rows reach them.
import type { TokenIndexInput } from './attention.js';
import { Tensor } from '../tensor/tensor.js';

/** The layout of one attention call's index inputs (positions null: the index positions). */
export interface DocumentLayout {
  readonly batch: number;
  readonly queryLen: number;
  readonly keyLen: number;
  readonly queryOffset: number;
  readonly queryPositions: TokenIndexInput | null;
  readonly keyPositions: TokenIndexInput | null;
  readonly querySegments: TokenIndexInput;
  readonly keySegments: TokenIndexInput;
}

/** Host values of an index input, or null when it lives on the device only (reading it would wait for the device). */
function onHost(input: TokenIndexInput | null): Int32Array | null {
  if (!input) return null;
  if (input instanceof Int32Array) return input;
  if (input instanceof Tensor) return null;
  return input.host;
}

/**
 * Whether, in every batch row, all tokens (queries and keys) with the same segment id have the same position − index,
 * with query i at index queryOffset + i and key j at index j. False when a needed array is on the device only.
 */
export function documentPositionsAreIndexShifts(layout: DocumentLayout): boolean {
  const { batch, queryLen, keyLen, queryOffset } = layout;
  const qSeg = onHost(layout.querySegments),
    kSeg = onHost(layout.keySegments);
  const qPos = onHost(layout.queryPositions),
    kPos = onHost(layout.keyPositions);
  if (!qSeg || !kSeg || (layout.queryPositions && !qPos) || (layout.keyPositions && !kPos)) return false;
  // Self-attention over one packed layout (the training step): one side to check.
  const sameSides =
    qSeg === kSeg && qPos === kPos && queryOffset === 0 && queryLen === keyLen && (qPos !== null) === (kPos !== null);
  const shifts = new Map<number, number>();
  for (let b = 0; b < batch; b++) {
    shifts.clear();
    // Consecutive tokens of one id need no map look-up (sorted ids, each document one run).
    const consistent = (seg: Int32Array, pos: Int32Array | null, length: number, first: number): boolean => {
      let lastId = 0,
        lastShift = 0;
      for (let t = 0; t < length; t++) {
        const id = seg[b * length + t]!;
        const shift = pos ? pos[b * length + t]! - (first + t) : 0;
        if (t > 0 && id === lastId) {
          if (shift !== lastShift) return false;
          continue;
        }
        const known = shifts.get(id);
        if (known === undefined) shifts.set(id, shift);
        else if (known !== shift) return false;
        lastId = id;
        lastShift = shift;
      }
      return true;
    };
    if (!consistent(qSeg, qPos, queryLen, queryOffset)) return false;
    if (!sameSides && !consistent(kSeg, kPos, keyLen, 0)) return false;
  }
  return true;
}
