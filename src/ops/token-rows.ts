// Per-token int32 values (positions, document ids) as the reference attention kernels read them: a
// window of [batch] rows inside a device tensor, so query blocks and batch groups need no copies.
import type { Dense } from '../engine/engine.js';
import type { Tensor } from '../tensor/tensor.js';

/** Row b's value i is element offset + b·stride + i of `data` (contiguous int32). */
export interface TokenRows {
  readonly data: Tensor;
  readonly offset: number;
  readonly stride: number;
}

/**
 * The engine region of `rows`, after checking the device and that `batch` rows of `length` values lie inside the data.
 */
export function tokenRegion(
  op: string,
  name: string,
  rows: TokenRows | null,
  batch: number,
  length: number,
  device: string,
): Dense | null {
  if (!rows) return null;
  const { data, offset, stride } = rows;
  if (data.device !== device) throw new Error(`${op}: ${name} are on ${data.device} but the tensor is on ${device}`);
  if (data.dtype !== 'int32' || !data.isContiguous())
    throw new TypeError(`${op}: ${name} must be a contiguous int32 tensor, got ${data.dtype}`);
  const last = batch > 0 && length > 0 ? offset + (batch - 1) * stride + length : 0;
  if (offset < 0 || stride < 0 || last > data.size) {
    throw new RangeError(
      `${op}: ${name} rows (offset ${offset}, stride ${stride}) of ${batch} × ${length} values do not fit ` +
        `its ${data.size} values`,
    );
  }
  const d = data.dense(op);
  return { ...d, offset: d.offset + offset };
}
