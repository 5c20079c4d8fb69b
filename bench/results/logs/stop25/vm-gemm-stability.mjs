import '../../../../dist/src/engine/index.js';
import { getEngine, Tensor, rand, matmul, tidy } from '../../../../dist/src/index.js';
const n = Number(process.argv[2] ?? 512);
const seconds = Number(process.argv[3] ?? 20);
const windowSeconds = Number(process.argv[4] ?? 2);
const a = rand([n, n]), b = rand([n, n]);
const times = [];
const t0 = performance.now();
while (performance.now() - t0 < seconds * 1000) {
  const s = performance.now();
  for (let r = 0; r < 5; r++) tidy(() => { matmul(a, b).toArray(); });
  times.push((performance.now() - s) / 5);
}
const sorted = [...times].sort((x, y) => x - y);
const q = (p) => sorted[Math.floor(p * (sorted.length - 1))];
console.log(`n ${n}: ${times.length} samples, ms min ${q(0).toFixed(2)} p10 ${q(0.1).toFixed(2)} median ${q(0.5).toFixed(2)} p90 ${q(0.9).toFixed(2)} max ${q(1).toFixed(2)}; GFLOP/s median ${(2*n**3/q(0.5)/1e6).toFixed(1)}`);
const chunks = Math.round(seconds / windowSeconds); const per = Math.floor(times.length / chunks);
console.log(`by ${windowSeconds} s:`, Array.from({length: chunks}, (_, i) => { const c = times.slice(i*per, (i+1)*per).sort((x,y)=>x-y); return c[Math.floor(c.length/2)].toFixed(2); }).join(' '));
