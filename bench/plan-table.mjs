// Markdown table of the planner's RESULT lines (bench/gpu-plan.sh, bench/cpu-plan.ts): node bench/plan-table.mjs FILE.jsonl
import { readFileSync } from 'node:fs';
const GiB = 2 ** 30;
const size = (b) =>
  !Number.isFinite(b) ? '–' : b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
const rows = readFileSync(process.argv[2], 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const describe = (w) =>
  w.mode === 'training'
    ? `train ${w.batch} × ${w.seqLen}, ${w.optimizer}${w.activationCheckpointing ? ', checkpointing' : ''}`
    : `infer ${w.batch} × (${w.promptTokens} + ${w.outputTokens})`;
const pct = (r) => (Number.isFinite(r) ? `${((r - 1) * 100).toFixed(1)}%` : '–');
console.log('| model | workload | predicted peak | measured peak | error | predicted tok/s | measured tok/s | error |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows)
  console.log(
    `| ${r.preset} | ${describe(r.workload)} | ${size(r.predicted.peakBytes)} | ${size(r.measured.peakBytes)} | ${pct(r.peakRatio)} | ${r.predicted.tokensPerSecond.toLocaleString('en')} | ${Number.isFinite(r.measured.tokensPerSecond) ? r.measured.tokensPerSecond.toLocaleString('en') : '–'} | ${pct(r.speedRatio)} |${r.error ? ` error: ${r.error.slice(0, 120)}` : ''}`,
  );
