/**
 * What the trainer and the generator need from a language model, as a small interface. The
 * Andromeda model (src/model) is adapted to it in ./andromeda-adapter.ts; tests use toy models.
 * Keeping the training loop behind this interface keeps it engine- and architecture-agnostic.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import type { ForwardOptions } from '../model/forward-options.js';

/** The options every language model's forward takes (the trainer passes no others). */
export type { ForwardOptions };

/** A decoder-only language model: tokens → next-token logits. */
export interface LanguageModel {
  readonly vocabSize: number;
  /** [path, tensor] of every trainable parameter, in a fixed order. */
  namedParameters(): [string, Tensor][];
  /** Live parameter and buffer tensors by name (for saving). */
  stateDict(): Map<string, Tensor>;
  /** Copies values into the model (names and shapes must match). */
  loadStateDict(state: ReadonlyMap<string, Tensor>): void;
  /** int32 tokens [batch, seqLen] → float logits [batch, seqLen, vocab]. */
  forward(tokens: Tensor, options?: ForwardOptions): Tensor;
  /**
   * The last hidden states [batch, seqLen, dim] that the output head maps to logits, and that head
   * (weight [vocab, dim], bias [vocab] or null, softCap: the logits become cap · tanh(logits / cap)). Optional:
   * with both, the trainer computes the loss a block of rows at a time instead of materialising every logit.
   */
  hiddenStates?(tokens: Tensor, options?: ForwardOptions): Tensor;
  readonly outputHead?: { weight: Tensor; bias: Tensor | null; softCap?: number | null };
  /**
   * Casts every floating parameter to `dtype` (mixed precision builds a bfloat16 compute copy this
   * way; see precision.ts). Optional: families without it train in float32 only.
   */
  to?(dtype: DType): unknown;
  train(mode?: boolean): unknown;
  eval(): unknown;
  dispose(): void;
}

/** Incremental decoding state: keys and values of the tokens seen so far. */
export interface DecodingSession {
  /** Tokens already in the cache. */
  readonly length: number;
  /**
   * Feeds `tokens` (int32 [1, n]) after those already cached and returns the logits of the last
   * one as a host array [vocab].
   */
  step(tokens: Int32Array): Float32Array;
  dispose(): void;
}

/** A model as a checkpoint describes it: a JSON config and a way to build and run it. */
export interface ModelFamily<Config = Record<string, unknown>> {
  /** Preset names this family can build, in increasing size. */
  presets(): string[];
  /** The config of a preset, with the vocabulary size set (and optional overrides). */
  presetConfig(preset: string, vocabSize: number, overrides?: Record<string, unknown>): Config;
  /** A freshly initialised model (weights drawn from `seed`). */
  create(config: Config, options: { seed: number; device: string }): LanguageModel;
  /** Number of parameters of a config, without building it. */
  parameterCount?(config: Config): number;
  /** Decoding with a KV cache; null when the model cannot cache (then decoding recomputes). */
  createDecodingSession?(model: LanguageModel, maxLength: number): DecodingSession | null;
  /** Whether the model can run its activations in `dtype` on `device`. */
  supportsComputeDType?(dtype: DType, device: string): boolean;
}
