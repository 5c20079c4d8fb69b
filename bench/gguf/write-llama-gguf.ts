// Writes a Llama-architecture GGUF file with seeded random weights, for timing llama.cpp against our CPU engine on a
// model of the same size (bench/cpu-decode-vs-llamacpp.sh). The format is GGUF version 3
// (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): header, metadata key/values, tensor infos, padding to
// the alignment, tensor data. Weights are F32 or Q8_0 (blocks of 32: an f16 scale max|x|/127, then 32 int8); norms
// stay F32, as llama.cpp's own converter keeps them.
//   node dist/bench/gguf/write-llama-gguf.js OUT.gguf f32|q8_0 [dim depth heads kvHeads ff vocab]
import { writeFileSync } from 'node:fs';

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const GGUF_VERSION = 3;
const ALIGNMENT = 32;

/** Metadata value types of GGUF. */
const enum ValueType {
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  String = 8,
  Array = 9,
}

/** ggml tensor types used here. */
const enum TensorType {
  F32 = 0,
  Q8_0 = 8,
}

/** general.file_type values (llama_ftype): all F32, or mostly Q8_0. */
const FILE_TYPE = { f32: 0, q8_0: 7 } as const;

export interface LlamaShape {
  dim: number;
  depth: number;
  heads: number;
  kvHeads: number;
  ff: number;
  vocab: number;
  contextLength: number;
}

type Value =
  | { type: ValueType.UInt32 | ValueType.Int32 | ValueType.Float32; value: number }
  | { type: ValueType.String; value: string }
  | { type: ValueType.Array; of: ValueType.String; value: string[] }
  | { type: ValueType.Array; of: ValueType.Float32 | ValueType.Int32; value: number[] };

/** A growing little-endian byte buffer. */
class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  bytes(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.bytes(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.bytes(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.bytes(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.bytes(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    if (pad) this.bytes(Buffer.alloc(pad));
  }
  result(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function writeValue(w: Writer, v: Value): void {
  w.u32(v.type);
  switch (v.type) {
    case ValueType.UInt32:
      w.u32(v.value);
      break;
    case ValueType.Int32:
      w.i32(v.value);
      break;
    case ValueType.Float32:
      w.f32(v.value);
      break;
    case ValueType.String:
      w.string(v.value);
      break;
    case ValueType.Array:
      w.u32(v.of);
      w.u64(v.value.length);
      for (const item of v.value) {
        if (v.of === ValueType.String) w.string(item as string);
        else if (v.of === ValueType.Float32) w.f32(item as number);
        else w.i32(item as number);
      }
      break;
  }
}

/** float32 → IEEE half bits (round to nearest even), for the Q8_0 block scales. */
function halfBits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  let mant = u & 0x7fffff;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    const half = (mant >>> shift) + ((mant >>> (shift - 1)) & 1);
    return sign | half;
  }
  if (exp >= 31) return sign | 0x7c00;
  const rounded = (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  return sign | (rounded + (rest > 0x1000 || (rest === 0x1000 && rounded & 1) ? 1 : 0));
}

function halfToFloat(h: number): number {
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Q8_0 blocks of a row-major array whose rows are a multiple of 32 long. */
function quantizeQ8_0(values: Float32Array): Buffer {
  if (values.length % 32 !== 0) throw new RangeError(`Q8_0 needs a multiple of 32 values, got ${values.length}`);
  const out = Buffer.alloc((values.length / 32) * 34);
  for (let block = 0; block < values.length / 32; block++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[block * 32 + i]!));
    const bits = halfBits(amax / 127);
    const d = halfToFloat(bits);
    out.writeUInt16LE(bits, block * 34);
    for (let i = 0; i < 32; i++) {
      const q = d === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(values[block * 32 + i]! / d)));
      out.writeInt8(q, block * 34 + 2 + i);
    }
  }
  return out;
}

/** Deterministic N(0, std) values (Box–Muller over a 32-bit LCG). */
function randomNormal(count: number, std: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0 || 1;
  const uniform = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 1) / 4294967297;
  };
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform())) * std;
    const t = 2 * Math.PI * uniform();
    out[i] = r * Math.cos(t);
    if (i + 1 < count) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

interface TensorEntry {
  name: string;
  /** ggml order: ne[0] is the innermost (contiguous) dimension. */
  ne: number[];
  type: TensorType;
  data: Buffer;
}

/** The GGUF bytes of a Llama model of `shape` with random weights; 2-D weights in `format`, norms F32. */
export function llamaGguf(shape: LlamaShape, format: 'f32' | 'q8_0', seed = 1): Buffer {
  const { dim, depth, heads, kvHeads, ff, vocab } = shape;
  const headDim = dim / heads;
  if (!Number.isInteger(headDim)) throw new RangeError(`dim ${dim} is not a multiple of heads ${heads}`);
  const tensors: TensorEntry[] = [];
  let nextSeed = seed;
  const matrix = (name: string, inFeatures: number, outFeatures: number): void => {
    const values = randomNormal(inFeatures * outFeatures, 0.02, nextSeed++);
    const q8 = format === 'q8_0';
    tensors.push({
      name,
      ne: [inFeatures, outFeatures],
      type: q8 ? TensorType.Q8_0 : TensorType.F32,
      data: q8 ? quantizeQ8_0(values) : Buffer.from(values.buffer),
    });
  };
  const norm = (name: string): void => {
    tensors.push({ name, ne: [dim], type: TensorType.F32, data: Buffer.from(new Float32Array(dim).fill(1).buffer) });
  };
  matrix('token_embd.weight', dim, vocab);
  for (let l = 0; l < depth; l++) {
    norm(`blk.${l}.attn_norm.weight`);
    matrix(`blk.${l}.attn_q.weight`, dim, dim);
    matrix(`blk.${l}.attn_k.weight`, dim, kvHeads * headDim);
    matrix(`blk.${l}.attn_v.weight`, dim, kvHeads * headDim);
    matrix(`blk.${l}.attn_output.weight`, dim, dim);
    norm(`blk.${l}.ffn_norm.weight`);
    matrix(`blk.${l}.ffn_gate.weight`, dim, ff);
    matrix(`blk.${l}.ffn_up.weight`, dim, ff);
    matrix(`blk.${l}.ffn_down.weight`, ff, dim);
  }
  norm('output_norm.weight');
  matrix('output.weight', dim, vocab);

  // A SentencePiece-style vocabulary: <unk>, <s>, </s>, then byte tokens <0x00>..; the rest plain pieces.
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [2, 3, 3];
  for (let b = 0; b < 256 && tokens.length < vocab; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  while (tokens.length < vocab) {
    tokens.push(`▁t${tokens.length}`);
    types.push(1);
  }
  const metadata: [string, Value][] = [
    ['general.architecture', { type: ValueType.String, value: 'llama' }],
    ['general.name', { type: ValueType.String, value: `andromeda-bench-llama-${format}` }],
    ['general.file_type', { type: ValueType.UInt32, value: FILE_TYPE[format] }],
    ['general.alignment', { type: ValueType.UInt32, value: ALIGNMENT }],
    ['llama.vocab_size', { type: ValueType.UInt32, value: vocab }],
    ['llama.context_length', { type: ValueType.UInt32, value: shape.contextLength }],
    ['llama.embedding_length', { type: ValueType.UInt32, value: dim }],
    ['llama.block_count', { type: ValueType.UInt32, value: depth }],
    ['llama.feed_forward_length', { type: ValueType.UInt32, value: ff }],
    ['llama.rope.dimension_count', { type: ValueType.UInt32, value: headDim }],
    ['llama.rope.freq_base', { type: ValueType.Float32, value: 10000 }],
    ['llama.attention.head_count', { type: ValueType.UInt32, value: heads }],
    ['llama.attention.head_count_kv', { type: ValueType.UInt32, value: kvHeads }],
    ['llama.attention.layer_norm_rms_epsilon', { type: ValueType.Float32, value: 1e-5 }],
    ['tokenizer.ggml.model', { type: ValueType.String, value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: ValueType.Array, of: ValueType.String, value: tokens }],
    ['tokenizer.ggml.scores', { type: ValueType.Array, of: ValueType.Float32, value: tokens.map(() => 0) }],
    ['tokenizer.ggml.token_type', { type: ValueType.Array, of: ValueType.Int32, value: types }],
    ['tokenizer.ggml.bos_token_id', { type: ValueType.UInt32, value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: ValueType.UInt32, value: 2 }],
    ['tokenizer.ggml.unknown_token_id', { type: ValueType.UInt32, value: 0 }],
  ];

  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, value] of metadata) {
    w.string(key);
    writeValue(w, value);
  }
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.length / ALIGNMENT) * ALIGNMENT;
  }
  w.padTo(ALIGNMENT);
  for (const t of tensors) {
    w.bytes(t.data);
    w.padTo(ALIGNMENT);
  }
  return w.result();
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  const [out, format = 'f32', ...sizes] = process.argv.slice(2);
  if (!out || (format !== 'f32' && format !== 'q8_0')) {
    console.error('usage: write-llama-gguf.js OUT.gguf f32|q8_0 [dim depth heads kvHeads ff vocab]');
    process.exit(2);
  }
  const [dim = 256, depth = 4, heads = 4, kvHeads = 1, ff = 704, vocab = 259] = sizes.map(Number);
  const bytes = llamaGguf({ dim, depth, heads, kvHeads, ff, vocab, contextLength: 4096 }, format);
  writeFileSync(out, bytes);
  console.log(`wrote ${out}: ${bytes.length} bytes (${format})`);
}
