import { LayerNorm } from '../nn/layer-norm.js';
import { RMSNorm } from '../nn/rms-norm.js';
import type { ParameterOptions } from '../nn/parameter.js';
import type { AndromedaConfig } from './config.js';

/** The norm of the config (`norm`: layer norm or RMS norm, eps `normEps`) over `dim` features. */
export type Norm = LayerNorm | RMSNorm;

export function makeNorm(config: AndromedaConfig, o: ParameterOptions): Norm {
  return config.norm === 'rmsnorm'
    ? new RMSNorm(config.dim, { ...o, eps: config.normEps })
    : new LayerNorm(config.dim, { ...o, eps: config.normEps });
}
