// Model-level prefill on the CUDA engine in bfloat16 with the fused attention: `orca` and
// `andromeda-3b` forward passes at long lengths. ANDROMEDA_BENCH_LOGITS=last,all (the default) runs each
// case with logits for the last position only (what generation after a prompt needs) and for every
// position; the last position is read back and checked. Prints one RESULT line per case: milliseconds
// (best of the timed runs), tokens/s, peak engine memory, finiteness.
//   node dist/bench/gpu-prefill.js orca:32768,100000,200000 andromeda-3b:8192,32768
import '../src/engine/index.js';
import { getEngine } from '../src/engine/registry.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { Tensor } from '../src/tensor/tensor.js';
import { tidy } from '../src/tensor/scope.js';
import { noGrad } from '../src/autograd/grad-mode.js';
import { narrow } from '../src/ops/layout.js';
import { Andromeda } from '../src/model/andromeda.js';
import { resetProfile } from '../src/engine/cuda-profile.js';

const cuda = getEngine('cuda') as CudaEngine;
const cases = process.argv.slice(2).map((arg) => {
  const [preset, lengths] = arg.split(':') as [string, string];
  return { preset, lengths: lengths.split(',').map(Number) };
});

const logitModes = (process.env.ANDROMEDA_BENCH_LOGITS ?? 'last,all').split(',') as ('last' | 'all')[];

for (const { preset, lengths } of cases) {
  const started = performance.now();
  const model = Andromeda.fromPreset(preset, {}, { seed: 0, device: 'cuda', dtype: 'bfloat16' });
  model.eval();
  console.error(
    `${preset}: ${model.parameterCount().toLocaleString()} parameters ` +
      `built in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  const vocab = model.config.vocabSize;
  for (const n of lengths)
    for (const logitMode of logitModes) {
      let seed = 7;
      const ids = Int32Array.from({ length: n }, () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) % vocab);
      const tokens = Tensor.fromArray(ids, [1, n], 'int32', 'cuda');
      const run = (): { ms: number; finite: boolean } =>
        tidy(() =>
          noGrad(() => {
            cuda.synchronize();
            const start = performance.now();
            const logits = model.forward(tokens, { logits: logitMode });
            cuda.synchronize();
            const ms = performance.now() - start;
            const last = narrow(logits, 1, logits.shape[1]! - 1, 1).toArray();
            return { ms, finite: last.every(Number.isFinite) };
          }),
        );
      try {
        run();
        // Under ANDROMEDA_CUDA_PROFILE the kernel totals then cover the timed runs only.
        resetProfile(cuda);
        cuda.resetPeakMemory();
        const timed = [run(), run(), run()];
        const ms = Math.min(...timed.map((t) => t.ms));
        console.log(
          `RESULT ${JSON.stringify({
            bench: 'gpu-prefill',
            preset,
            seq: n,
            dtype: 'bfloat16',
            logits: logitMode === 'last' ? 'last position only' : 'every position',
            ms: Math.round(ms * 10) / 10,
            tok_s: Math.round(n / (ms / 1000)),
            peak_gib: +(cuda.memoryStats().peakAllocated / 2 ** 30).toFixed(2),
            finite: timed.every((t) => t.finite),
            device: cuda.description,
          })}`,
        );
      } catch (e) {
        console.log(
          'RESULT ' +
            JSON.stringify({
              bench: 'gpu-prefill',
              preset,
              seq: n,
              logits: logitMode,
              error: (e as Error).message.slice(0, 300),
            }),
        );
      }
      tokens.dispose();
    }
  model.dispose();
  cuda.emptyCache();
}
