/** Blocks the thread for `ms` milliseconds (a test knob that slows training steps down). */
export function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
