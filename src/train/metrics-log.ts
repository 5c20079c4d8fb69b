/**
 * The run's metrics log: one JSON object per line (JSONL) in <out>/metrics.jsonl, appended as
 * training goes. On resume the lines written after the checkpoint's step are dropped, so the log
 * always describes exactly the run that the weights came from.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface TrainRecord {
  kind: 'train';
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens processed by this step (all micro-batches). */
  tokens: number;
  /** Tokens processed since the start of training. */
  totalTokens: number;
  tokensPerSecond: number;
  /** Seconds since this process started training. */
  elapsed: number;
  /** True when the divergence guard skipped the update. */
  skipped?: boolean;
}

export interface EvalRecord {
  kind: 'eval';
  step: number;
  loss: number;
  bitsPerByte: number;
  tokens: number;
  /** The unigram baseline on the same targets. */
  unigramLoss?: number;
}

export interface EventRecord {
  kind: 'event';
  step: number;
  message: string;
}

export type MetricRecord = TrainRecord | EvalRecord | EventRecord;

export class MetricsLog {
  constructor(readonly path: string) {}

  append(record: MetricRecord): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }

  /** Every record (malformed lines, e.g. one cut short by a crash, are skipped). */
  read(): MetricRecord[] {
    return readMetrics(this.path);
  }

  /** Keeps only records up to and including `step` (used on resume); starts a new log without a step. */
  truncateAfter(step: number | null): void {
    const kept = step === null ? [] : this.read().filter((r) => r.step <= step);
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    renameSync(tmp, this.path);
  }
}

export function readMetrics(path: string): MetricRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as MetricRecord;
      if (r && typeof r === 'object' && typeof r.step === 'number') out.push(r);
    } catch {
      // a torn last line after a crash
    }
  }
  return out;
}
