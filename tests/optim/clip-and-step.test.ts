// clipAndStep (src/optim/clip.ts) on the CPU engine: the cases of tests/helpers/clip-and-step-cases.ts.
import { test } from 'node:test';
import { clipAndStepCases } from '../helpers/clip-and-step-cases.js';

clipAndStepCases('cpu', (name, fn) => test(name, fn));
