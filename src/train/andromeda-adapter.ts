/**
 * The Andromeda model (src/model) as the trainer's and generator's ModelFamily. This file only
 * adapts: configs come from the model's presets, forward passes and the KV cache are the model's.
 * The checkpoint's config.json is the model's resolved AndromedaConfig, so `new Andromeda(config)`
 * rebuilds the same architecture.
 */
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { Andromeda } from '../model/andromeda.js';
import { PRESET_NAMES, presetInput } from '../model/presets.js';
import { resolveConfig, type AndromedaConfig, type AndromedaConfigInput } from '../model/config.js';
import { countParameters } from '../model/parameter-shapes.js';
import type { DecodingSession, ForwardOptions, LanguageModel, ModelFamily } from './model.js';
import { registerModelFamily } from './families.js';

/** Andromeda with the trainer's forward signature (segment ids and positions as tensors). */
export class AndromedaLM implements LanguageModel {
  constructor(readonly model: Andromeda) {}

  get vocabSize(): number {
    return this.model.config.vocabSize;
  }

  namedParameters() {
    return this.model.namedParameters();
  }

  stateDict() {
    return this.model.stateDict();
  }

  loadStateDict(state: ReadonlyMap<string, Tensor>): void {
    this.model.loadStateDict(state);
  }

  forward(tokens: Tensor, o: ForwardOptions = {}): Tensor {
    return this.model.forward(tokens, o);
  }

  hiddenStates(tokens: Tensor, o: ForwardOptions = {}): Tensor {
    return this.model.hiddenStates(tokens, o);
  }

  get outputHead() {
    return this.model.outputHead;
  }

  to(dtype: DType) {
    return this.model.to(dtype);
  }

  train(mode = true) {
    return this.model.train(mode);
  }

  eval() {
    return this.model.eval();
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** The underlying Andromeda module of an adapted model (or null for other families). */
export function unwrapAndromeda(model: LanguageModel): Andromeda | null {
  return model instanceof AndromedaLM ? model.model : null;
}

class AndromedaSession implements DecodingSession {
  private readonly cache;
  length = 0;

  constructor(
    private readonly model: Andromeda,
    capacity: number,
  ) {
    this.cache = model.createKVCache(1, { capacity: Math.max(16, capacity) });
  }

  step(tokens: Int32Array): Float32Array {
    const logits = tidy(() =>
      noGrad(() => {
        const input = Tensor.fromArray(tokens, [1, tokens.length], 'int32', this.model.device);
        return this.model.forward(input, { kvCache: this.cache, logits: 'last' }).toArray();
      }),
    );
    this.length += tokens.length;
    return Float32Array.from(logits);
  }

  dispose(): void {
    this.cache.dispose();
  }
}

export const andromedaFamily: ModelFamily<AndromedaConfig> = {
  presets: () =>
    [...PRESET_NAMES].sort(
      (a, b) => countParameters(resolveConfig(presetInput(a))) - countParameters(resolveConfig(presetInput(b))),
    ),
  presetConfig(preset, vocabSize, overrides = {}) {
    // A vocabSize the user set is kept (the trainer rejects one smaller than the tokenizer's), not replaced.
    const given = overrides as Partial<AndromedaConfigInput>;
    return resolveConfig(presetInput(preset, { ...given, vocabSize: given.vocabSize ?? vocabSize }));
  },
  create(config, { seed, device }) {
    return new AndromedaLM(new Andromeda(config, { seed, device }));
  },
  parameterCount: (config) => countParameters(config),
  createDecodingSession(model, maxLength) {
    const inner = unwrapAndromeda(model);
    return inner ? new AndromedaSession(inner, maxLength) : null;
  },
  supportsComputeDType: (dtype) => dtype === 'float32' || dtype === 'bfloat16',
};

registerModelFamily('andromeda', andromedaFamily);
