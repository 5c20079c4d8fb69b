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
export * from './data/index.js';
export { train, type TrainOptions, type TrainResult, type StopReason } from './train/trainer.js';
export { DEFAULT_CONFIG, validateConfig, type TrainConfig } from './train/config.js';
export { registerModelFamily, getModelFamily } from './train/families.js';
export type { LanguageModel, ModelFamily } from './train/model.js';
export { generate, type GenerateOptions, type GenerateResult } from './inference/generate.js';
export { loadModelForInference, type LoadedModel } from './inference/load.js';
export type { SamplingOptions } from './inference/sampling.js';
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
export { ChatTemplate, DEFAULT_CHAT_TEMPLATE } from './serve/chat-template.js';
export { loadChatTemplate } from './serve/chat-template-file.js';
export { VERSION } from './version.js';
