// The CUDA profiler (ANDROMEDA_CUDA_PROFILE) around graph captures, on a stand-in engine that records what the
// profiler asks of it: inside a capture it must neither record events nor read them (a read waits for the device,
// which a capture refuses); each replay is timed as one call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installProfiler } from '../../src/engine/cuda-profile.js';
import type { DeviceGraph, Engine } from '../../src/engine/engine.js';

function standIn() {
  const log: string[] = [];
  let capturing = false;
  const engine = {
    device: 'cuda:0',
    timingMark() {
      if (capturing) throw new Error('timingMark inside a capture');
      log.push('mark');
      return 0;
    },
    timingRead() {
      if (capturing) throw new Error('timingRead inside a capture');
      log.push('read');
      return new Float64Array(8192).fill(0.01);
    },
    synchronize() {
      if (capturing) throw new Error('synchronize inside a capture');
      log.push('sync');
    },
    matmul() {
      log.push(capturing ? 'matmul (captured)' : 'matmul');
    },
    captureGraph(fn: () => void): DeviceGraph {
      capturing = true;
      try {
        fn();
      } finally {
        capturing = false;
      }
      return { device: 'cuda:0', replay: () => log.push('replay'), dispose: () => {} } as unknown as DeviceGraph;
    },
  };
  return { engine: engine as unknown as Engine & typeof engine, log };
}

for (const mode of ['events', 'waits'] as const) {
  test(`profiler (${mode}): calls inside a capture pass through unprofiled; a replay is timed as one call`, () => {
    const { engine, log } = standIn();
    installProfiler(engine, mode);
    // Enough calls before the capture that the events mode's batch read would fall due inside it.
    for (let i = 0; i < 4095; i++) engine.matmul();
    log.length = 0;
    const graph = engine.captureGraph(() => {
      engine.matmul();
      engine.matmul();
    });
    assert.deepEqual(log, ['matmul (captured)', 'matmul (captured)']);
    log.length = 0;
    graph.replay();
    assert.deepEqual(log, mode === 'events' ? ['mark', 'replay', 'mark', 'read'] : ['sync', 'replay', 'sync']);
  });
}

test('profiler (events): each idle gap is charged to the call that ended it', () => {
  // Marks pair up around each call: [call 0, gap 0→1, call 1, gap 1→2, call 2, …] as the device would read them.
  const reads = [Float64Array.from([1, 0.5, 2, 3, 1, 0.25, 4])];
  const engine = {
    device: 'cuda:0',
    timingMark: () => 0,
    timingRead: () => reads.shift() ?? new Float64Array(0),
    synchronize() {},
    matmul() {},
    copy() {},
    captureGraph: (): DeviceGraph => {
      throw new Error('not captured here');
    },
  };
  const profiler = installProfiler(engine as unknown as Engine & typeof engine, 'events');
  engine.matmul();
  engine.copy();
  engine.copy();
  engine.matmul();
  engine.synchronize();
  const lines = profiler.report().join('\n');
  assert.match(lines, /device idle between profiled calls: 3\.8 ms/);
  assert.match(lines, /3\.5 ms +2× +idle before copy/);
  assert.match(lines, /0\.3 ms +1× +idle before matmul/);
  assert.match(lines, /5\.0 ms +2× +matmul/);
  assert.match(lines, /3\.0 ms +2× +copy/);
});
