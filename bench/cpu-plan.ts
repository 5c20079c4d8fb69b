// The planner against the CPU engine on this machine: three configurations (decoding through the InferenceEngine,
// training with activation checkpointing, training with 8-bit AdamW), each predicted and then run, with the
// allocator's measured peak (native/cpu/binding.cc counts every tensor) and the measured tokens/s beside the plan.
//   node dist/bench/cpu-plan.js [--threads 2,1] [--rounds N] [--jsonl FILE]
// Each thread count runs in its own process (ANDROMEDA_THREADS=N) and the table of all of them is printed at the
// end. `--rounds N` runs each thread count's process N times, the three configurations one after another in each,
// so that all of them meet the same slow and fast spells of a shared machine (this VM's speed moves by ±10% over
// 20-second windows and more between minutes: bench/results/plan.md, stop 25); a second table then gives each
// configuration's median over the rounds against the prediction, with the rounds' spread. Two measures of speed:
//  - wall time: the planner's tokens/s for N threads against tokens over wall seconds. This is the bar's figure,
//    but only on an idle machine: another process on the cores stretches it (the CPU share column says how much
//    of its threads' time the run got, and the load average before each run is recorded).
//  - CPU time, with one thread: the planner's one-thread tokens/s against tokens over the CPU seconds the process
//    used. A neighbour on the same core takes turns with it rather than stretching its work, so this holds on a
//    shared machine (up to what the neighbour does to the caches).
import '../src/engine/index.js';
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { getEngine } from '../src/engine/registry.js';
import type { CpuEngine } from '../src/engine/cpu.js';
import { presetConfig } from '../src/model/presets.js';
import { planRun } from '../src/plan/plan.js';
import { cpuDevice } from '../src/plan/cpu-device.js';
import { measureInference, measureTraining } from '../src/plan/measure.js';
import type { Workload } from '../src/plan/workload.js';

const training = {
  mode: 'training',
  precision: 'float32',
  gradAccum: 1,
  gpus: 1,
  zeroStage: 0,
} as const;
const configs: Array<{ preset: string; workload: Workload }> = [
  {
    // The decode case of bench/results/cpu-decode-vs-llamacpp.md: small, a 16-token prompt, 256 tokens.
    preset: 'small',
    workload: {
      mode: 'inference',
      batch: 1,
      promptTokens: 16,
      outputTokens: 256,
      kvDtype: 'float32',
      blockSize: 32,
      tokenBudget: 512,
      cudaGraphs: false,
    },
  },
  {
    preset: 'small',
    workload: { ...training, batch: 8, seqLen: 256, optimizer: 'adamw', activationCheckpointing: true },
  },
  {
    preset: 'small',
    workload: { ...training, batch: 8, seqLen: 256, optimizer: 'adamw8bit', activationCheckpointing: false },
  },
];
// Steady state (stop 19, bench/results/plan.md): with warm-up steps and runs too few, the measured ones were still
// speeding up — a process's first 3–5 decode runs read 530–720 tokens/s on two threads where later ones read
// 800–970 (tokens per CPU second rise with them: the JIT, not the machine), and training steps fall for the first
// ~5 (0.52, 0.40, 0.41, 0.40, 0.39 s, then 0.35–0.37 s with AdamW).
// Training: the first steps fill the allocator's cache and the GEMM plans and let the JIT settle; the median of the
// rest is kept.
const TRAINING_STEPS = 15;
const TRAINING_WARMUP = 6;
// Decoding: each run builds its own engine (with one untimed run of its own); the process's first runs are
// discarded (2 were too few: cpu-idle-stop19-1809.log's measured runs still rose, 533 → 785) and the median of the
// rest is kept, runs differing by up to ±20% on this VM.
const DECODE_WARMUP_RUNS = 5;
const DECODE_RUNS = 7;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cpuSecondsSince = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

interface Result {
  bench: 'cpu-plan';
  threads: number;
  preset: string;
  workload: Workload;
  loadAverageBefore: number;
  predicted: { peakBytes: number; tokensPerSecond: number; peakMoment?: string; basis: string };
  measured: {
    peakBytes: number;
    tokensPerSecond: number;
    tokensPerCpuSecond: number;
    /** Training: each measured step's wall seconds; decoding: each run's tokens/s. */
    runs: number[];
    /** The same in CPU time: each step's CPU seconds, or each run's tokens per CPU second. */
    cpuRuns: number[];
  };
  peakRatio: number;
  /** Predicted over measured tokens/s in wall time. */
  speedRatio: number;
  /** Predicted over measured tokens per CPU second (the measure for one thread). */
  cpuSpeedRatio: number;
  /** CPU seconds over wall seconds × threads: 1 when the run had its threads to itself and kept them busy. */
  cpuShare: number;
}

/** Runs every configuration on this process's engine and prints a RESULT line for each. */
async function measureAll(): Promise<void> {
  const engine = getEngine('cpu') as CpuEngine;
  const threads = engine.threads();
  console.log(`# CPU engine, ${threads} thread${threads === 1 ? '' : 's'} (${engine.cpuInfo().isa})`);
  for (const { preset, workload } of configs) {
    const config = presetConfig(preset, { maxSeqLen: 4096 });
    const plan = planRun({ name: preset, config }, workload, cpuDevice(threads, engine.cpuInfo().isa));
    const loadAverageBefore = loadavg()[0]!;
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    let measured: Result['measured'];
    if (workload.mode === 'training') {
      const m = measureTraining(config, workload, 'cpu', { steps: TRAINING_STEPS, warmup: TRAINING_WARMUP });
      measured = {
        peakBytes: m.peakBytes,
        tokensPerSecond: m.tokensPerSecond,
        tokensPerCpuSecond: m.tokensPerCpuSecond,
        runs: m.stepSeconds.map((s) => Number(s.toFixed(4))),
        cpuRuns: m.stepCpuSeconds.map((s) => Number(s.toFixed(4))),
      };
    } else {
      for (let run = 0; run < DECODE_WARMUP_RUNS; run++) await measureInference(config, workload, 'cpu');
      const runs = [];
      for (let run = 0; run < DECODE_RUNS; run++) runs.push(await measureInference(config, workload, 'cpu'));
      measured = {
        peakBytes: Math.max(...runs.map((r) => r.peakBytes)),
        tokensPerSecond: median(runs.map((r) => r.decodeTokensPerSecond)),
        tokensPerCpuSecond: median(runs.map((r) => r.decodeTokensPerCpuSecond)),
        runs: runs.map((r) => Math.round(r.decodeTokensPerSecond)),
        cpuRuns: runs.map((r) => Math.round(r.decodeTokensPerCpuSecond)),
      };
    }
    const cpuShare = cpuSecondsSince(cpuBefore) / (((performance.now() - wallBefore) / 1000) * threads);
    const predictedTokens = plan.throughput!.tokensPerSecond;
    const result: Result = {
      bench: 'cpu-plan',
      threads,
      preset,
      workload,
      loadAverageBefore: Number(loadAverageBefore.toFixed(2)),
      predicted: {
        peakBytes: plan.peakBytes,
        tokensPerSecond: Math.round(predictedTokens),
        peakMoment: plan.peakMoment,
        basis: plan.throughput!.basis,
      },
      measured: {
        ...measured,
        tokensPerSecond: Math.round(measured.tokensPerSecond),
        tokensPerCpuSecond: Math.round(measured.tokensPerCpuSecond),
      },
      peakRatio: Number((plan.peakBytes / measured.peakBytes).toFixed(4)),
      speedRatio: Number((predictedTokens / measured.tokensPerSecond).toFixed(4)),
      cpuSpeedRatio: Number((predictedTokens / measured.tokensPerCpuSecond).toFixed(4)),
      cpuShare: Number(cpuShare.toFixed(3)),
    };
    console.log(`RESULT ${JSON.stringify(result)}`);
  }
}

function describe(w: Workload): string {
  return w.mode === 'training'
    ? `train ${w.batch} × ${w.seqLen}, ${w.optimizer}${w.activationCheckpointing ? ', checkpointing' : ''}`
    : `infer ${w.batch} × (${w.promptTokens} + ${w.outputTokens})`;
}

function printTable(results: Result[]): void {
  const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)}%`;
  const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const count = (n: number): string => n.toLocaleString('en');
  const header = [
    'threads',
    'model',
    'workload',
    'predicted peak',
    'measured peak',
    'error',
    'predicted tok/s',
    'measured tok/s (wall)',
    'error',
    'CPU share',
    'load before',
    'tok per CPU-second',
    'error (CPU time)',
  ];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const r of results) {
    const oneThread = r.threads === 1;
    console.log(
      `| ${[
        r.threads,
        r.preset,
        describe(r.workload),
        mib(r.predicted.peakBytes),
        mib(r.measured.peakBytes),
        pct(r.peakRatio),
        count(r.predicted.tokensPerSecond),
        count(r.measured.tokensPerSecond),
        pct(r.speedRatio),
        r.cpuShare,
        r.loadAverageBefore,
        // Tokens per CPU second compare with the prediction only where one thread does all the work.
        oneThread ? count(r.measured.tokensPerCpuSecond) : '–',
        oneThread ? pct(r.cpuSpeedRatio) : '–',
      ].join(' | ')} |`,
    );
  }
}

/** Each (threads, configuration)'s median tokens/s over the rounds against its prediction, with their spread. */
function printMedians(results: Result[]): void {
  const groups = new Map<string, Result[]>();
  for (const r of results) {
    const key = `${r.threads} ${r.preset} ${describe(r.workload)}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const pct = (ratio: number): string => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)}%`;
  console.log(
    '\n| threads | model | workload | rounds | predicted tok/s | median measured tok/s (wall) | error | ' +
      "rounds' range | rounds within 15% |",
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const rows of groups.values()) {
    const r = rows[0]!;
    const measured = rows.map((x) => x.measured.tokensPerSecond);
    const mid = median(measured);
    const within = rows.filter((x) => Math.abs(x.speedRatio - 1) <= 0.15).length;
    console.log(
      `| ${r.threads} | ${r.preset} | ${describe(r.workload)} | ${rows.length} | ` +
        `${r.predicted.tokensPerSecond.toLocaleString('en')} | ${mid.toLocaleString('en')} | ` +
        `${pct(r.predicted.tokensPerSecond / mid)} | ${Math.min(...measured).toLocaleString('en')}–` +
        `${Math.max(...measured).toLocaleString('en')} | ${within} of ${rows.length} |`,
    );
  }
}

const args = process.argv.slice(2);
if (args.includes('--worker')) {
  await measureAll();
} else {
  const option = (name: string): string | null => {
    const at = args.indexOf(name);
    if (at < 0) return null;
    const value = args[at + 1];
    if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`);
    return value;
  };
  const jsonl = option('--jsonl');
  const threadCounts = (option('--threads') ?? '2,1').split(',').map((t) => {
    const n = Number(t);
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`--threads takes positive integers separated by commas, got "${t}"`);
    return n;
  });
  const format = (l: number[]): string => l.map((x) => x.toFixed(2)).join(', ');
  console.log(`# load average before: ${format(loadavg())}`);
  const rounds = Number(option('--rounds') ?? 1);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 100)
    throw new Error(`--rounds takes an integer from 1 to 100, got "${option('--rounds')}"`);
  const results: Result[] = [];
  for (let round = 0; round < rounds; round++)
    for (const threads of threadCounts) {
      const child = spawnSync(process.execPath, [process.argv[1]!, '--worker'], {
        env: { ...process.env, ANDROMEDA_THREADS: String(threads) },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 64 * 2 ** 20,
      });
      process.stdout.write(child.stdout);
      if (child.status !== 0)
        throw new Error(`the ${threads}-thread run failed (exit ${child.status ?? child.signal})`);
      for (const line of child.stdout.split('\n'))
        if (line.startsWith('RESULT ')) {
          const result = JSON.parse(line.slice('RESULT '.length)) as Result;
          results.push(result);
          if (jsonl) appendFileSync(jsonl, `${JSON.stringify(result)}\n`);
        }
    }
  console.log(`# load average after: ${format(loadavg())}\n`);
  printTable(results);
  if (rounds > 1) printMedians(results);
}
