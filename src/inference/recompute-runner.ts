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
import { concat, narrow, reshape } from '../ops/layout.js';
import type { LanguageModel } from '../train/model.js';
import type { SampledToken, StepLayout } from './scheduler.js';
import type { StepRunner } from './step-runner.js';
import { sampleRows, type RequestSampling } from './device-sampling.js';

export class RecomputeRunner implements StepRunner {
  readonly kvCache = 'none';
  readonly capturedGraphs = 0;

  constructor(
    private readonly model: LanguageModel,
    private readonly device: string,
    /** Columns that may be sampled (the tokenizer's vocabulary). */
    private readonly vocab: number,
    readonly numBlocks: number,
  ) {}

  run(step: StepLayout, rows: readonly RequestSampling[]): SampledToken[] {
    if (step.sampling.length === 0) return [];
    return tidy(() =>
      noGrad(() => {
        const lastRows = step.sampling.map((sequence) => {
          const input = Tensor.fromArray(
            Int32Array.from(sequence.tokens),
            [1, sequence.tokens.length],
            'int32',
            this.device,
          );
          const logits = this.model.forward(input, { logits: 'last' });
          // Families that ignore logits: 'last' return every position: the last one is wanted.
          const n = logits.shape[1]!;
          return reshape(n === 1 ? logits : narrow(logits, 1, n - 1, 1), [1, logits.shape[2]!]);
        });
        return sampleRows(concat(lastRows, 0), rows, this.vocab);
      }),
    );
  }

  dispose(): void {}
}
