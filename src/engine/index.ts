import { CpuEngine } from './cpu.js';
import { CudaEngine } from './cuda.js';
import { registerEngineFactory } from './registry.js';

registerEngineFactory('cpu', () => new CpuEngine());
registerEngineFactory('cuda', (index) => new CudaEngine(index));

export * from './engine.js';
export * from './registry.js';
export { CpuEngine } from './cpu.js';
