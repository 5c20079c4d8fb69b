/**
 * The step runner for models without a paged forward (other model families): every sequence that
 * samples in a step is run from its first token to its last, and nothing is cached. It computes the
 * same logits as a cache would, at quadratic cost, so the engine's scheduling, limits and streaming work
 * for any LanguageModel; prefill chunks that sample nothing cost nothing here (the final chunk runs the
 * whole context).
 */
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import type { LanguageModel } from '../train/model.js';
import type { StepLayout } from './scheduler.js';
import type { StepRunner } from './step-runner.js';

export class RecomputeRunner implements StepRunner {
  readonly paged = false;
  readonly vocabSize: number;

  constructor(
    private readonly model: LanguageModel,
    private readonly device: string,
    readonly numBlocks: number,
  ) {
    this.vocabSize = model.vocabSize;
  }

  logits(step: StepLayout): Float32Array {
    const out = new Float32Array(step.sampling.length * this.vocabSize);
    step.sampling.forEach((sequence, r) => {
      const context = Int32Array.from(sequence.tokens);
      const row = tidy(() =>
        noGrad(() => {
          const input = Tensor.fromArray(context, [1, context.length], 'int32', this.device);
          const logits = this.model.forward(input, { logits: 'last' });
          // Families that ignore logits: 'last' return every position: the last row is at the end.
          return logits.toArray();
        }),
      );
      out.set(row.subarray(row.length - this.vocabSize), r * this.vocabSize);
    });
    return out;
  }

  dispose(): void {}
}
