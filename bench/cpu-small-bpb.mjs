#!/usr/bin/env node
// The issue-6 bar: the `small` preset trained on the CPU for at most 30 minutes must reach held-out
// bits per byte below gzip -9 and xz -9 on the same held-out text. Runs the training command,
// compresses the held-out text with the system's gzip and xz, and writes
// bench/results/cpu-small-bpb.md with the three numbers and the exact command.
//
//   npm run build && node bench/cpu-small-bpb.mjs [--max-minutes 26] [--steps 1800]
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const out = arg('out', 'runs/cpu-small-bpb');
const steps = arg('steps', '1800');
const maxMinutes = arg('max-minutes', '26');

// 1. The held-out text: the default corpus's val documents, exactly as the model is scored on them.
const manifest = JSON.parse(readFileSync(join(root, 'corpus', 'manifest.json'), 'utf8'));
let heldOut = '';
for (const source of manifest.sources) {
  for (const line of readFileSync(join(root, 'corpus', source.files.val), 'utf8').split('\n'))
    if (line.trim()) heldOut += JSON.parse(line).text;
}
const text = Buffer.from(heldOut, 'utf8');
mkdirSync(join(root, out), { recursive: true });
const textPath = join(root, out, 'held-out.txt');
writeFileSync(textPath, text);
const compressed = (tool) => execFileSync(tool, ['-9', '-c', textPath], { maxBuffer: 1 << 28 }).length;
const gzipBytes = compressed('gzip');
const xzBytes = compressed('xz');
const bpb = (n) => (n * 8) / text.length;
const version = (tool) => execFileSync(tool, ['--version']).toString().split('\n')[0];

// 2. Train the small preset on the CPU.
const command = [
  'node',
  'dist/src/cli/main.js',
  'train',
  '--preset',
  'small',
  '--device',
  'cpu',
  '--tokenizer',
  'byte',
  '--steps',
  steps,
  '--batch-size',
  '16',
  '--seq-len',
  '256',
  '--lr',
  '0.002',
  '--warmup',
  '100',
  '--eval-every',
  '300',
  '--eval-tokens',
  '16384',
  '--final-eval-tokens',
  '0',
  '--checkpoint-every',
  '300',
  '--max-minutes',
  maxMinutes,
  '--out',
  out,
  '--overwrite',
  '--quiet',
];
// --report-only: rewrite the report from an existing run (wall time as recorded then, if given).
const reportOnly = process.argv.includes('--report-only');
const started = Date.now();
if (!reportOnly) {
  const run = spawnSync(command[0], command.slice(1), { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (run.status !== 0) {
    console.error(`training failed with status ${run.status}`);
    process.exit(1);
  }
}
const wallMinutes = reportOnly ? Number(arg('wall-minutes', 'NaN')) : (Date.now() - started) / 60000;
const records = readFileSync(join(root, out, 'metrics.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const evals = records.filter((r) => r.kind === 'eval');
const final = evals[evals.length - 1];
const trainRecords = records.filter((r) => r.kind === 'train');
const last = trainRecords[trainRecords.length - 1];
const load = reportOnly
  ? arg('load', 'not recorded')
  : readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const pass = final.bitsPerByte < bpb(gzipBytes) && final.bitsPerByte < bpb(xzBytes);
const md =
  `# CPU, \`small\` preset: held-out bits per byte vs gzip -9 and xz -9

The bar (issue 6): a CPU run of at most 30 minutes on the \`small\` preset reaches held-out bits per
byte below \`gzip -9\` and \`xz -9\` on the same held-out text. **${pass ? 'Met' : 'Not met'}.**

| | held-out bits per byte |
|---|---|
| Andromeda \`small\` (${(last.totalTokens / 1e6).toFixed(1)}M training tokens, ${last.step} steps) ` +
  `| **${final.bitsPerByte.toFixed(4)}** |
| \`xz -9\` (${version('xz')}) | ${bpb(xzBytes).toFixed(4)} (${xzBytes} bytes) |
| \`gzip -9\` (${version('gzip')}) | ${bpb(gzipBytes).toFixed(4)} (${gzipBytes} bytes) |
| add-one unigram baseline (from the training split) | ` +
  (final.unigramLoss !== undefined
    ? ((final.unigramLoss * final.tokens) / (Math.LN2 * (text.length - 1))).toFixed(4)
    : 'n/a') +
  ` |

- Held-out text: the default corpus's fixed held-out split (every tenth document of each source:
  Moby-Dick chapters, State of the Union addresses, TypeScript lib declarations), ${text.length} bytes of
  UTF-8, the val documents concatenated in manifest order (written to \`${out}/held-out.txt\`).
  The compressors get exactly these bytes. The model is scored on every byte of it after the first
  (byte-level tokens; end-of-document tokens are predicted too but count 0 bytes, so they only add
  to the model's cost): held-out loss ${final.loss.toFixed(4)} nats/token over ${final.tokens} tokens.
- Training: ${last.step} steps of 16 × 256 byte tokens on the training split ` +
  `only${
    last.step < Number(steps)
      ? ` — stopped by \`--max-minutes ${maxMinutes}\` at step ${last.step} of the ${steps} planned, ` +
        `so the cosine schedule had not finished (learning rate ${last.lr.toExponential(2)} at the end, peak 2e-3)`
      : ''
  }; wall time
  ${wallMinutes.toFixed(1)} minutes for the whole command (data loading, training, evaluations,
  checkpoints, the final full held-out evaluation); training alone ${(last.elapsed / 60).toFixed(1)} minutes.
- Machine: ${cpus().length} CPU cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, the CPU engine.
  Load average at the end: ${load}. Other engineers' builds and tests shared these cores during the
  run, so the throughput here is a lower bound for a quiet machine.

Command (after \`npm ci && npm run build\`), run by \`node bench/cpu-small-bpb.mjs ` +
  `--steps ${steps} --max-minutes ${maxMinutes}\`:

\`\`\`sh
${command.join(' ')}
gzip -9 -c ${out}/held-out.txt | wc -c
xz -9 -c ${out}/held-out.txt | wc -c
\`\`\`

Metrics: \`${out}/metrics.jsonl\`; plot: \`${out}/plot.html\`.
`;
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'cpu-small-bpb.md'), md);
console.log(md);
