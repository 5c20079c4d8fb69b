/**
 * The planner's current predictions against measurements recorded earlier: reads bench/gpu-plan.sh RESULT lines
 * (JSONL), plans each workload again with this checkout's src/plan, and writes the lines back with `predicted`,
 * `peakRatio` and `speedRatio` replaced — for bench/plan-table.mjs. The measurements are left as recorded, so a
 * change to the planner's model is judged on the same runs it was fitted to and on runs it was not.
 *   node dist/bench/plan-repredict.js RESULTS.jsonl > NOW.jsonl && node bench/plan-table.mjs NOW.jsonl
 */
import { readJsonlLogs } from './jsonl-logs.js';
import { presetConfig } from '../src/model/presets.js';
import { planRun } from '../src/plan/plan.js';
import { GPUS } from '../src/plan/devices.js';
import type { Workload } from '../src/plan/workload.js';

interface Recorded {
  preset: string;
  table: string;
  workload: Workload;
  measured: { peakBytes: number; tokensPerSecond: number };
  [key: string]: unknown;
}

const file = process.argv[2];
if (!file) throw new Error('usage: plan-repredict.js RESULTS.jsonl');
const ratio = (a: number, b: number) => Number((a / b).toFixed(4));
for (const r of readJsonlLogs([file]) as Recorded[]) {
  const gpu = GPUS.find((g) => g.name === r.table);
  if (!gpu) throw new Error(`plan-repredict: no GPU named '${r.table}' in the planner's table`);
  // As bench/gpu-plan.ts plans it: the preset with room for any length.
  const config = presetConfig(r.preset, { maxSeqLen: 1 << 20 });
  const plan = planRun({ name: r.preset, config }, r.workload, gpu);
  const tokensPerSecond = Math.round(plan.throughput!.tokensPerSecond);
  console.log(
    JSON.stringify({
      ...r,
      predicted: { peakBytes: plan.peakBytes, tokensPerSecond },
      peakRatio: ratio(plan.peakBytes, r.measured.peakBytes),
      speedRatio: ratio(tokensPerSecond, r.measured.tokensPerSecond),
    }),
  );
}
