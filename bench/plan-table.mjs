// Markdown table of the planner's RESULT lines (bench/gpu-plan.sh, bench/cpu-plan.ts):
//   node bench/plan-table.mjs FILE.jsonl
import { readFileSync } from 'node:fs';
const GiB = 2 ** 30;
const size = (b) =>
  !Number.isFinite(b) ? '–' : b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
const count = (n) => (Number.isFinite(n) ? n.toLocaleString('en') : '–');
const rows = readFileSync(process.argv[2], 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const describe = (w) =>
  w.mode === 'training'
    ? `train ${w.batch} × ${w.seqLen}, ${w.optimizer}${w.activationCheckpointing ? ', checkpointing' : ''}`
    : `infer ${w.batch} × (${w.promptTokens} + ${w.outputTokens})`;
const pct = (r) => (Number.isFinite(r) ? `${((r - 1) * 100).toFixed(1)}%` : '–');
const shares = rows.some((r) => r.cpuShare !== undefined);
const header = ['model', 'workload', 'predicted peak', 'measured peak', 'error', 'predicted tok/s', 'measured tok/s'];
header.push('error', ...(shares ? ['CPU share', 'error at that share'] : []));
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of rows) {
  const cells = [r.preset, describe(r.workload), size(r.predicted.peakBytes), size(r.measured.peakBytes)];
  cells.push(pct(r.peakRatio), count(r.predicted.tokensPerSecond), count(r.measured.tokensPerSecond));
  cells.push(pct(r.speedRatio), ...(shares ? [String(r.cpuShare), pct(r.speedRatio * r.cpuShare)] : []));
  console.log(`| ${cells.join(' | ')} |${r.error ? ` error: ${r.error.slice(0, 120)}` : ''}`);
}
