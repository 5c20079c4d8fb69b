import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRate, validateSchedule } from '../../src/train/schedule.js';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} ≉ ${b}`);

test('linear warmup rises to the peak, cosine decays to 4% of the peak by default', () => {
  const o = { peak: 1e-3, totalSteps: 110, warmupSteps: 10 };
  close(learningRate(0, o), 1e-4);
  close(learningRate(4, o), 5e-4);
  close(learningRate(9, o), 1e-3);
  close(learningRate(10, o), 1e-3); // first decay step runs at the peak
  // halfway through the 100 decay steps (progress 0.5 at step 10 + 49.5): between peak and floor
  const mid = learningRate(59, o);
  assert.ok(mid < 1e-3 && mid > 0.04e-3);
  close(learningRate(109, o), 0.04e-3); // last step at the floor
  close(learningRate(500, o), 0.04e-3); // stays at the floor past the end
  for (let s = 10; s < 109; s++) assert.ok(learningRate(s + 1, o) <= learningRate(s, o), `non-increasing at ${s}`);
});

test('cosine midpoint is (peak + floor) / 2', () => {
  const o = { peak: 2, totalSteps: 101, warmupSteps: 0, minRatio: 0.1 };
  close(learningRate(50, o), (2 + 0.2) / 2, 1e-12);
});

test('optional cool-down decays linearly from the floor to zero', () => {
  const o = { peak: 1, totalSteps: 100, warmupSteps: 0, minRatio: 0.5, cooldownSteps: 10 };
  close(learningRate(89, o), 0.5); // end of cosine
  close(learningRate(90, o), 0.5); // cool-down starts at the floor
  close(learningRate(95, o), 0.25);
  close(learningRate(99, o), 0.05);
  close(learningRate(100, o), 0);
});

test('no warmup and a floor of 0 reach exactly 0 at the end', () => {
  const o = { peak: 1, totalSteps: 11, warmupSteps: 0, minRatio: 0 };
  close(learningRate(0, o), 1);
  close(learningRate(10, o), 0);
});

test('schedule validation names the problem', () => {
  assert.throws(
    () => validateSchedule({ peak: 1, totalSteps: 10, warmupSteps: 8, cooldownSteps: 5 }),
    /exceed the 10 total steps/,
  );
  assert.throws(() => validateSchedule({ peak: -1, totalSteps: 10, warmupSteps: 0 }), /peak learning rate/);
  assert.throws(() => validateSchedule({ peak: 1, totalSteps: 0, warmupSteps: 0 }), /total steps/);
  assert.throws(() => validateSchedule({ peak: 1, totalSteps: 10, warmupSteps: 0, minRatio: 2 }), /minimum ratio/);
});
