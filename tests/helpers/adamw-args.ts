// The AdamW hyperparameters the optimizer kernel tests step with, so each test states only what it varies.
import type { AdamWArgs } from '../../src/engine/engine.js';

/** lr 1e-3, β 0.9 / 0.95, eps 1e-8, weight decay 0.1, with the bias corrections of step `step` (from 1). */
export function adamwTestArgs(step: number, gradScale: number): AdamWArgs {
  return {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    biasCorrection1: 1 - 0.9 ** step,
    biasCorrection2: 1 - 0.95 ** step,
    gradScale,
  };
}
