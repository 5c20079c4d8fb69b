// Moving tensors between dtypes and devices.
import { Tensor } from '../tensor/tensor.js';
import { DTYPES, DTYPE_BYTES, type DType } from '../tensor/dtype.js';
import { record } from '../autograd/tape.js';
import { emptyLike } from './util.js';
import { contiguousRaw } from './raw.js';

/** A copy of `x` in another dtype (gradients flow back, cast to the input's dtype). */
export function cast(x: Tensor, dtype: DType): Tensor {
  x.assertAlive('cast', 'x');
  if (dtype === x.dtype)
    return record(x.view(x.shape, x.strides, x.offset), 'cast', [x], (g) => [g.view(g.shape, g.strides, g.offset)]);
  const out = emptyLike(x, x.shape, dtype);
  if (out.size > 0) x.engine.copy(x.strided('cast'), out.strided(), x.shape);
  if (dtype === 'int32' || x.dtype === 'int32') return out;
  return record(out, 'cast', [x], (g) => [cast(g, x.dtype)]);
}

/** A copy of `x` on another device (through host memory). */
export function toDevice(x: Tensor, device: string): Tensor {
  x.assertAlive('toDevice', 'x');
  const target = Tensor.empty(x.shape, x.dtype, device);
  if (target.device === x.device) {
    target.dispose();
    return record(x.view(x.shape, x.strides, x.offset), 'toDevice', [x], (g) => [g.view(g.shape, g.strides, g.offset)]);
  }
  const src = x.isContiguous() ? x : contiguousRaw(x);
  const bytes = x.size * DTYPE_BYTES[x.dtype];
  if (bytes > 0) {
    const raw = src.engine.download(src.storage.handle, src.offset * DTYPE_BYTES[x.dtype], bytes);
    target.engine.upload(target.storage.handle, 0, new Uint8Array(raw));
  }
  if (src !== x) src.dispose();
  const from = x.device;
  return record(target, 'toDevice', [x], (g) => [toDevice(g, from)]);
}

/** `.to('bfloat16')` casts, `.to('cuda')` moves. */
export function to(x: Tensor, dtypeOrDevice: string): Tensor {
  if ((DTYPES as readonly string[]).includes(dtypeOrDevice)) return cast(x, dtypeOrDevice as DType);
  return toDevice(x, dtypeOrDevice);
}
