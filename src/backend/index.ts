import { CpuBackend } from './cpu.js';
import { CudaBackend } from './cuda.js';
import { registerBackendFactory } from './registry.js';

registerBackendFactory('cpu', () => new CpuBackend());
registerBackendFactory('cuda', (index) => new CudaBackend(index));

export * from './backend.js';
export * from './registry.js';
export { CpuBackend } from './cpu.js';
