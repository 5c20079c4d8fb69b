// A direct float64 transcription of the transformers decoder (Llama, Mistral, Qwen2, Qwen3, StableLM) over
// checkpoint tensors by their transformers names, written from modeling_llama.py / modeling_stablelm.py
// independently of the model code under test: heads grouped as repeat_kv does (query head h reads key/value
// head ⌊h / R⌋), rotate_half rotary on the first rotaryDim features of each head, the causal mask limited to
// the last `window` keys, Qwen3's RMS norm per head before rotary, StableLM's parallel residual.

export interface ReferenceSpec {
  vocab: number;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  inner: number;
  rotaryDim: number;
  theta: number;
  eps: number;
  norm: 'rms' | 'layer';
  parallel: boolean;
  qkNorm: boolean;
  window: number | null;
  tied: boolean;
}

type Weights = ReadonlyMap<string, Float64Array>;

function linear(x: Float64Array, n: number, w: Float64Array, b: Float64Array | undefined, out: number): Float64Array {
  const inDim = w.length / out;
  const y = new Float64Array(n * out);
  for (let t = 0; t < n; t++)
    for (let o = 0; o < out; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inDim; i++) s += x[t * inDim + i]! * w[o * inDim + i]!;
      y[t * out + o] = s;
    }
  return y;
}

function norm(x: Float64Array, width: number, kind: 'rms' | 'layer', eps: number, w: Float64Array, b?: Float64Array) {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / width; r++) {
    const row = x.subarray(r * width, (r + 1) * width);
    let mean = 0;
    if (kind === 'layer') mean = row.reduce((a, v) => a + v, 0) / width;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / width;
    for (let i = 0; i < width; i++)
      y[r * width + i] = ((row[i]! - mean) / Math.sqrt(variance + eps)) * w[i]! + (b ? b[i]! : 0);
  }
  return y;
}

/** rotate_half rotary of x [n, count, headDim] in place, positions 0..n−1. */
function rotate(x: Float64Array, n: number, count: number, s: ReferenceSpec): void {
  const half = s.rotaryDim / 2;
  for (let t = 0; t < n; t++)
    for (let h = 0; h < count; h++) {
      const base = (t * count + h) * s.headDim;
      for (let i = 0; i < half; i++) {
        const invFreq = Math.fround(1 / s.theta ** ((2 * i) / s.rotaryDim));
        const angle = t * invFreq;
        const a = x[base + i]!,
          b = x[base + i + half]!;
        x[base + i] = a * Math.cos(angle) - b * Math.sin(angle);
        x[base + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
}

/** Logits [n, vocab] of one sequence. */
export function referenceLogits(s: ReferenceSpec, w: Weights, tokens: ArrayLike<number>): Float64Array {
  const n = tokens.length;
  const get = (name: string): Float64Array => {
    const v = w.get(name);
    if (!v) throw new Error(`reference: no tensor ${name}`);
    return v;
  };
  const embed = get('model.embed_tokens.weight');
  let x = new Float64Array(n * s.dim);
  for (let t = 0; t < n; t++) x.set(embed.subarray(tokens[t]! * s.dim, (tokens[t]! + 1) * s.dim), t * s.dim);
  const normOf = (v: Float64Array, prefix: string): Float64Array =>
    norm(v, s.dim, s.norm, s.eps, get(`${prefix}.weight`), w.get(`${prefix}.bias`));
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    const h = normOf(x, `${p}.input_layernorm`);
    const proj = (name: string, count: number): Float64Array =>
      linear(h, n, get(`${p}.self_attn.${name}.weight`), w.get(`${p}.self_attn.${name}.bias`), count * s.headDim);
    let q = proj('q_proj', s.heads);
    let k = proj('k_proj', s.kvHeads);
    const v = proj('v_proj', s.kvHeads);
    if (s.qkNorm) {
      q = norm(q, s.headDim, 'rms', s.eps, get(`${p}.self_attn.q_norm.weight`));
      k = norm(k, s.headDim, 'rms', s.eps, get(`${p}.self_attn.k_norm.weight`));
    }
    rotate(q, n, s.heads, s);
    rotate(k, n, s.kvHeads, s);
    const merged = new Float64Array(n * s.heads * s.headDim);
    const group = s.heads / s.kvHeads;
    for (let head = 0; head < s.heads; head++) {
      const kv = Math.floor(head / group);
      for (let i = 0; i < n; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (s.window !== null && i - j >= s.window) {
            scores.push(-Infinity);
            continue;
          }
          let dot = 0;
          for (let d = 0; d < s.headDim; d++)
            dot += q[(i * s.heads + head) * s.headDim + d]! * k[(j * s.kvHeads + kv) * s.headDim + d]!;
          scores.push(dot / Math.sqrt(s.headDim));
        }
        const max = Math.max(...scores);
        const e = scores.map((z) => Math.exp(z - max));
        const total = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < s.headDim; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += (e[j]! / total) * v[(j * s.kvHeads + kv) * s.headDim + d]!;
          merged[(i * s.heads + head) * s.headDim + d] = acc;
        }
      }
    }
    const attended = linear(merged, n, get(`${p}.self_attn.o_proj.weight`), w.get(`${p}.self_attn.o_proj.bias`), s.dim);
    const mlp = (input: Float64Array): Float64Array => {
      const m = (name: string, out: number, from: Float64Array) =>
        linear(from, n, get(`${p}.mlp.${name}.weight`), w.get(`${p}.mlp.${name}.bias`), out);
      const gate = m('gate_proj', s.inner, input);
      const up = m('up_proj', s.inner, input);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      return m('down_proj', s.dim, act);
    };
    if (s.parallel) {
      const fed = mlp(h);
      x = x.map((v0, i) => v0 + attended[i]! + fed[i]!);
    } else {
      x = x.map((v0, i) => v0 + attended[i]!);
      const fed = mlp(normOf(x, `${p}.post_attention_layernorm`));
      x = x.map((v0, i) => v0 + fed[i]!);
    }
  }
  const final = normOf(x, 'model.norm');
  return linear(final, n, s.tied ? embed : get('lm_head.weight'), undefined, s.vocab);
}
