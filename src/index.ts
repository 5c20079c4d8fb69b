// Public API of the andromeda package.
import './engine/index.js';

export { Tensor } from './tensor/tensor.js';
export { Storage } from './tensor/storage.js';
export * from './tensor/dtype.js';
export * from './tensor/shape.js';
export { tidy, keep, scopeDepth } from './tensor/scope.js';
export { Generator, defaultGenerator, manualSeed } from './tensor/random.js';
export { noGrad, withGrad, isGradEnabled } from './autograd/grad-mode.js';
export * as ops from './ops/index.js';
export * from './ops/index.js';
export * from './engine/index.js';
export * from './optim/index.js';
export * from './nn/index.js';
export * from './model/index.js';
export * from './io/index.js';
export { InferenceEngine, GenerationStream, QueueFullError } from './inference/engine.js';
export type {
  InferenceEngineOptions,
  GenerationParams,
  GenerationResult,
  GenerationUsage,
  FinishReason,
  TokenEvent,
  EngineStats,
  SamplingParams,
} from './inference/engine.js';
