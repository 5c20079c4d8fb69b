/**
 * Splits a model's parameters into AdamW groups: weight decay for the matrices of linear layers,
 * none for norms, biases, embeddings and learned scale vectors (the usual GPT/Llama/StableLM
 * recipe). The choice is made by shape and name, so it works for any model that names its
 * parameters.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { ParamGroup } from '../optim/optimizer.js';
import type { AdamWHyper } from '../optim/adamw.js';

export interface NamedParameter {
  name: string;
  tensor: Tensor;
}

/** Name fragments of parameters that are never decayed (matched per dotted/underscored word). */
const NO_DECAY_WORDS = new RegExp(
  '(^|[._/])(bias|biases|norm|norms|ln|ln_f|layernorm|rmsnorm|emb|embed|embedding|embeddings|token_emb|wte|wpe|' +
    'scale|scales|gamma|beta|residual_scale|dim_scale)([._/]|\\d|$)',
  'i',
);

/** True when a parameter gets no weight decay: vectors (norm weights, biases, scales) and embeddings. */
export function isNoDecayParameter(name: string, shape: readonly number[]): boolean {
  if (shape.length <= 1) return true;
  return NO_DECAY_WORDS.test(name) || /norm/i.test(name);
}

export interface GroupOptions {
  weightDecay: number;
  /** Decay embeddings too (off by default). */
  decayEmbeddings?: boolean;
}

export interface GroupedParameters {
  groups: ParamGroup<Partial<AdamWHyper>>[];
  decay: string[];
  noDecay: string[];
}

/** Two AdamW groups in a fixed order: [decayed matrices, everything else (weight decay 0)]. */
export function groupParameters(params: readonly NamedParameter[], options: GroupOptions): GroupedParameters {
  const decay: NamedParameter[] = [];
  const noDecay: NamedParameter[] = [];
  for (const p of params) {
    const embeddingLike = /(^|[._])(emb|embed|embedding|token_emb|wte)([._]|$)/i.test(p.name);
    const exempt =
      isNoDecayParameter(p.name, p.tensor.shape) && !(options.decayEmbeddings && embeddingLike && p.tensor.rank >= 2);
    (exempt ? noDecay : decay).push(p);
  }
  const groups: ParamGroup<Partial<AdamWHyper>>[] = [];
  if (decay.length > 0)
    groups.push({ params: decay.map((p) => p.tensor), hyper: { weightDecay: options.weightDecay } });
  if (noDecay.length > 0) groups.push({ params: noDecay.map((p) => p.tensor), hyper: { weightDecay: 0 } });
  return { groups, decay: decay.map((p) => p.name), noDecay: noDecay.map((p) => p.name) };
}
