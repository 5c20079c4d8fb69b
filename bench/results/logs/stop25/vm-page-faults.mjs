import '../../../../dist/src/engine/index.js';
import { presetConfig } from '../../../../dist/src/model/presets.js';
import { measureTraining } from '../../../../dist/src/plan/measure.js';
const w = { mode: 'training', precision: 'float32', gradAccum: 1, gpus: 1, zeroStage: 0, batch: 8, seqLen: 256, optimizer: 'adamw', activationCheckpointing: true };
for (let r = 0; r < 4; r++) {
  const f0 = process.resourceUsage().minorPageFault, t0 = performance.now();
  const m = measureTraining(presetConfig('small'), w, 'cpu', { steps: 4, warmup: 0 });
  const f1 = process.resourceUsage().minorPageFault;
  console.log(`run ${r}: ${(performance.now()-t0).toFixed(0)} ms, steps ${m.stepSeconds.map(s=>s.toFixed(3)).join(' ')}, minor faults ${f1-f0} (${((f1-f0)/4).toFixed(0)} a step)`);
}
