export { Module, ModuleList, StateDictError, type LoadStateDictOptions } from './module.js';
export { Linear, type LinearOptions } from './linear.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { LayerNorm, type LayerNormOptions, type ResidualInput } from './layer-norm.js';
export { RMSNorm, type RMSNormOptions } from './rms-norm.js';
export * from './parameter.js';
