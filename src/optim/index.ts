export * from './optimizer.js';
export * from './adamw.js';
export * from './sgd.js';
export * from './clip.js';
export * from './adamw8bit.js';
export * from './adamw8bit-map.js';
