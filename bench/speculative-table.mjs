// Markdown table of bench/speculative-engine.ts's RESULT lines (a log of bench/speculative-cpu.sh): per batch
// size and k, the median over rounds of tokens/s, of the speed-up over the same round's target alone (wall time
// and CPU seconds per token), the acceptance rate and tokens per sequence per step, with the range of the
// wall-time speed-up and the rounds' load average and CPU share.
//   node bench/speculative-table.mjs LOG
import { readFileSync } from 'node:fs';
if (!process.argv[2]) {
  console.error('usage: node bench/speculative-table.mjs LOG');
  process.exit(2);
}
const results = readFileSync(process.argv[2], 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('RESULT '))
  .map((l) => JSON.parse(l.slice('RESULT '.length)))
  .filter((r) => r.bench === 'speculative-engine');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const range = (xs) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
const groups = new Map();
for (const r of results) {
  const key = `${r.batch} ${r.k ?? 'alone'}`;
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key).push(r);
}
const header = ['batch', 'k', 'rounds', 'tok/s (median)', 'speed-up (median)', 'speed-up range'];
header.push('CPU-time speed-up', 'acceptance', 'tokens / step', 'identical', 'load average', 'CPU share');
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const rs of groups.values()) {
  const alone = rs[0].k === undefined;
  const of = (field) => rs.map((r) => r[field]);
  const cells = [rs[0].batch, alone ? 'target alone' : rs[0].k, rs.length, median(of('tokensPerSecond')).toFixed(1)];
  cells.push(alone ? '1' : `**${median(of('speedup')).toFixed(2)}×**`, alone ? '' : range(of('speedup')));
  cells.push(alone ? '1' : `${median(of('cpuSpeedup')).toFixed(2)}×`);
  cells.push(alone ? '' : median(of('acceptance')).toFixed(3), median(of('tokensPerSequenceStep')).toFixed(2));
  cells.push(
    alone
      ? ''
      : rs.every((r) => r.identicalToTarget.split('/')[0] === r.identicalToTarget.split('/')[1])
        ? 'all'
        : 'NO',
  );
  cells.push(range(of('loadAverage')), of('cpuShare').every((x) => x !== undefined) ? range(of('cpuShare')) : '–');
  console.log(`| ${cells.join(' | ')} |`);
}
