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
// bench/cpu-plan.ts records each row's thread count and, for one thread, tokens per CPU second.
const threads = rows.some((r) => r.threads !== undefined);
const cpuTime = rows.some((r) => r.cpuSpeedRatio !== undefined);
const header = [...(threads ? ['threads'] : []), 'model', 'workload', 'predicted peak', 'measured peak', 'error'];
header.push('predicted tok/s', 'measured tok/s', 'error', ...(shares ? ['CPU share'] : []));
if (cpuTime) header.push('tok per CPU-second', 'error (CPU time)');
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of rows) {
  const cells = [...(threads ? [String(r.threads)] : []), r.preset, describe(r.workload)];
  cells.push(size(r.predicted.peakBytes), size(r.measured.peakBytes), pct(r.peakRatio));
  cells.push(count(r.predicted.tokensPerSecond), count(r.measured.tokensPerSecond), pct(r.speedRatio));
  if (shares) cells.push(String(r.cpuShare));
  // Tokens per CPU second measure the prediction only where one thread does all the work.
  if (cpuTime)
    cells.push(...(r.threads === 1 ? [count(r.measured.tokensPerCpuSecond), pct(r.cpuSpeedRatio)] : ['–', '–']));
  console.log(`| ${cells.join(' | ')} |${r.error ? ` error: ${r.error.slice(0, 120)}` : ''}`);
}
