import { CpuBackend } from './cpu.js';
import { registerBackendFactory } from './registry.js';

registerBackendFactory('cpu', () => new CpuBackend());

export * from './backend.js';
export * from './registry.js';
export { CpuBackend } from './cpu.js';
