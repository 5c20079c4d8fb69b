export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int32';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32'];

/** Numeric code shared with the native engines (keep in sync with native/common/dtype.h). */
export const DTYPE_CODE: Record<DType, number> = { float32: 0, float64: 1, bfloat16: 2, float16: 3, int32: 4 };

export const DTYPE_BYTES: Record<DType, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2, int32: 4 };

export function isFloating(dtype: DType): boolean {
  return dtype !== 'int32';
}

/** The host array type a tensor of this dtype reads into: half types widen to float32. */
export type HostArray = Float32Array | Float64Array | Int32Array;

export function hostArrayFor(dtype: DType, length: number): HostArray {
  if (dtype === 'float64') return new Float64Array(length);
  if (dtype === 'int32') return new Int32Array(length);
  return new Float32Array(length);
}

export function assertDType(value: string, what: string): DType {
  if ((DTYPES as readonly string[]).includes(value)) return value as DType;
  throw new TypeError(`${what}: unknown dtype '${value}' (expected one of ${DTYPES.join(', ')})`);
}

// Host-side conversions for half types, used when uploading and reading back.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round-to-nearest-even float32 → bfloat16 bits (NaN stays NaN). */
export function floatToBf16Bits(value: number): number {
  f32[0] = value;
  const bits = u32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return ((bits >>> 16) | 0x0040) & 0xffff;
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

export function bf16BitsToFloat(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** Round-to-nearest-even float32 → IEEE half bits, with subnormals, infinities and NaN. */
export function floatToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function f16BitsToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes host numbers into the raw bytes a device buffer of `dtype` holds. */
export function encodeHost(dtype: DType, values: ArrayLike<number>): ArrayBufferView {
  switch (dtype) {
    case 'float32':
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case 'float64':
      return values instanceof Float64Array ? values : Float64Array.from(values);
    case 'int32': {
      if (values instanceof Int32Array) return values;
      const out = new Int32Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647) {
          throw new RangeError(`int32 tensor: value ${v} at index ${i} is not a 32-bit integer`);
        }
        out[i] = v;
      }
      return out;
    }
    case 'bfloat16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = floatToBf16Bits(values[i]!);
      return out;
    }
    case 'float16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = floatToF16Bits(values[i]!);
      return out;
    }
  }
}

/** Decodes raw device bytes of `dtype` into a host array (half types widen to float32). */
export function decodeHost(dtype: DType, raw: ArrayBuffer, length: number): HostArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(raw, 0, length);
    case 'float64':
      return new Float64Array(raw, 0, length);
    case 'int32':
      return new Int32Array(raw, 0, length);
    case 'bfloat16':
    case 'float16': {
      const bits = new Uint16Array(raw, 0, length);
      const out = new Float32Array(length);
      const convert = dtype === 'bfloat16' ? bf16BitsToFloat : f16BitsToFloat;
      for (let i = 0; i < length; i++) out[i] = convert(bits[i]!);
      return out;
    }
  }
}
