import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Histogram } from '../../src/serve/metrics.js';

test('a histogram renders cumulative buckets, the count and the sum, ignoring non-finite values', () => {
  const histogram = new Histogram([0.01, 0.1, 1]);
  for (const seconds of [0, 0.005, 0.01, 0.05, 0.5, 0.7, 3, NaN, Infinity]) histogram.observe(seconds);
  assert.deepEqual(histogram.lines('latency'), [
    'latency_bucket{le="0.01"} 3',
    'latency_bucket{le="0.1"} 4',
    'latency_bucket{le="1"} 6',
    'latency_bucket{le="+Inf"} 7',
    `latency_sum ${0 + 0.005 + 0.01 + 0.05 + 0.5 + 0.7 + 3}`,
    'latency_count 7',
  ]);
});
