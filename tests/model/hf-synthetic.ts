// Transformers-format checkpoints written by the tests: random weights under transformers' tensor names,
// laid out as save_pretrained writes them (config.json, model.safetensors or shards with an index).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import type { ReferenceSpec } from './hf-reference.js';

/** Deterministic normal-ish values (sum of uniforms) from a 32-bit seed. */
export function randomValues(count: number, seed: number, scale: number, offset = 0): Float64Array {
  let state = seed >>> 0;
  const uniform = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float64Array.from({ length: count }, () => offset + scale * (uniform() + uniform() + uniform() - 1.5) * 2);
}

export interface SyntheticCase {
  name: string;
  spec: ReferenceSpec;
  config: Record<string, unknown>;
  biases: { qkv: boolean; o: boolean; mlp: boolean };
  stored: DType;
  shards: number;
}

/** The checkpoint tensors by transformers name, rounded to the stored dtype (so the reference sees them). */
export function checkpointTensors(c: SyntheticCase): Map<string, Float64Array> {
  const s = c.spec;
  const out = new Map<string, Float64Array>();
  let seed = 1;
  const add = (name: string, count: number, scale: number, offset = 0): void => {
    out.set(name, randomValues(count, seed++, scale, offset));
  };
  const normOf = (prefix: string): void => {
    add(`${prefix}.weight`, s.dim, 0.2, 1);
    if (s.norm === 'layer') add(`${prefix}.bias`, s.dim, 0.1);
  };
  add('model.embed_tokens.weight', s.vocab * s.dim, 1);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    normOf(`${p}.input_layernorm`);
    if (!s.parallel) normOf(`${p}.post_attention_layernorm`);
    const projections: [string, number, number][] = [
      ['q_proj', s.heads * s.headDim, s.dim],
      ['k_proj', s.kvHeads * s.headDim, s.dim],
      ['v_proj', s.kvHeads * s.headDim, s.dim],
      ['o_proj', s.dim, s.heads * s.headDim],
    ];
    for (const [name, rows, columns] of projections) {
      add(`${p}.self_attn.${name}.weight`, rows * columns, 1 / Math.sqrt(columns));
      if (name === 'o_proj' ? c.biases.o : c.biases.qkv) add(`${p}.self_attn.${name}.bias`, rows, 0.1);
    }
    if (s.qkNorm) {
      add(`${p}.self_attn.q_norm.weight`, s.headDim, 0.2, 1);
      add(`${p}.self_attn.k_norm.weight`, s.headDim, 0.2, 1);
    }
    for (const [name, rows, columns] of [
      ['gate_proj', s.inner, s.dim],
      ['up_proj', s.inner, s.dim],
      ['down_proj', s.dim, s.inner],
    ] as const) {
      add(`${p}.mlp.${name}.weight`, rows * columns, 1 / Math.sqrt(columns));
      if (c.biases.mlp) add(`${p}.mlp.${name}.bias`, rows, 0.1);
    }
  }
  normOf('model.norm');
  if (!s.tied) add('lm_head.weight', s.vocab * s.dim, 1 / Math.sqrt(s.dim));
  for (const [name, v] of out) {
    const t = Tensor.fromArray(v, [v.length], c.stored);
    out.set(name, Float64Array.from(t.toArray()));
    t.dispose();
  }
  return out;
}

/** Writes config.json and the weights as transformers' save_pretrained lays them out. */
export function writeCheckpoint(dir: string, c: SyntheticCase, tensors: Map<string, Float64Array>): void {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c.config, null, 2));
  const shapeOf = (name: string, v: Float64Array): number[] => {
    if (v.length === c.spec.dim || name.endsWith('.bias') || name.endsWith('norm.weight')) return [v.length];
    const rows = name.includes('embed_tokens') || name === 'lm_head.weight' ? c.spec.vocab : 0;
    if (rows) return [rows, v.length / rows];
    const m = /(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)/.exec(name)![1]!;
    const s = c.spec;
    const out: Record<string, number> = {
      q_proj: s.heads * s.headDim,
      k_proj: s.kvHeads * s.headDim,
      v_proj: s.kvHeads * s.headDim,
      o_proj: s.dim,
      gate_proj: s.inner,
      up_proj: s.inner,
      down_proj: s.dim,
    };
    return [out[m]!, v.length / out[m]!];
  };
  const names = [...tensors.keys()];
  const perShard = Math.ceil(names.length / c.shards);
  const weightMap: Record<string, string> = {};
  for (let shard = 0; shard < c.shards; shard++) {
    const file =
      c.shards === 1
        ? 'model.safetensors'
        : `model-${String(shard + 1).padStart(5, '0')}-of-0000${c.shards}.safetensors`;
    const part = new Map<string, Tensor>();
    for (const name of names.slice(shard * perShard, (shard + 1) * perShard)) {
      const v = tensors.get(name)!;
      part.set(name, Tensor.fromArray(v, shapeOf(name, v), c.stored));
      weightMap[name] = file;
    }
    writeSafetensors(join(dir, file), part, { format: 'pt' });
    for (const t of part.values()) t.dispose();
  }
  if (c.shards > 1)
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}
