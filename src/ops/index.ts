export * from './creation.js';
export * from './layout.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './nn.js';
export * from './convert.js';
export * from './backward.js';
