// clipAndStep (src/optim/clip.ts) on the CUDA engine: the fused AdamW kernels read the sum of squares in device
// memory and clip (or skip) themselves; the cases of tests/helpers/clip-and-step-cases.ts.
import { gpuTest } from './harness.js';
import { clipAndStepCases } from '../helpers/clip-and-step-cases.js';

clipAndStepCases('cuda', gpuTest);
