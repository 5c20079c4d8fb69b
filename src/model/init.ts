/**
 * Initialisation as x-transformers 1.20 does it: token embedding kaiming-normal (std sqrt(2/dim));
 * with DeepNorm every linear inside the stack xavier-normal with gain β = (8·depth)^-0.25 for value,
 * output and feed-forward and 1 for query and key, biases zero; otherwise PyTorch's Linear default
 * (uniform ±1/sqrt(fan_in), bias too). The logits head is outside the stack: always the Linear
 * default. Norms start at weight 1 / bias 0, residual and qk-norm scales at 1 (set at construction).
 */
import { Generator } from '../tensor/random.js';
import { kaimingNormal, xavierNormal } from '../nn/parameter.js';
import type { Linear } from '../nn/linear.js';
import type { Andromeda } from './andromeda.js';

export function deepnormGain(depth: number): number {
  return (8 * depth) ** -0.25;
}

export function initializeAndromeda(model: Andromeda, generator: Generator): void {
  const c = model.config;
  kaimingNormal(model.embedding.weight, generator);
  const beta = deepnormGain(c.depth);
  for (const block of model.blocks) {
    const { query, key, value, output } = block.attention;
    const withGain: [Linear, number][] = [
      [query, 1],
      [key, 1],
      [value, beta],
      [output, beta],
      [block.feedForward.input, beta],
      [block.feedForward.output, beta],
    ];
    for (const [layer, gain] of withGain) {
      if (c.init === 'deepnorm') {
        xavierNormal(layer.weight, gain, generator);
        layer.zeroBias();
      } else layer.resetParameters(generator);
    }
  }
  model.logits?.resetParameters(generator);
}
