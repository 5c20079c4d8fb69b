/**
 * The training progress line on stderr: step, bar, loss, learning rate, tokens/s and ETA. On a
 * terminal it is redrawn in place; otherwise (logs, pipes) a plain line is printed now and then.
 */
import { formatCount } from '../data/progress-bar.js';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

export interface ProgressState {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  tokensPerSecond: number;
  /** Seconds left, from the recent step rate. */
  etaSeconds: number;
}

export class TrainProgress {
  private lastDraw = 0;
  private readonly isTty: boolean;
  private readonly intervalMs: number;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    intervalMs?: number,
    private readonly enabled = true,
    /** Where `log` lines go (default: the stream). */
    private readonly sink: (line: string) => void = (line) => stream.write(line + '\n'),
  ) {
    this.isTty = stream.isTTY === true;
    this.intervalMs = intervalMs ?? (this.isTty ? 150 : 10_000);
  }

  static render(s: ProgressState): string {
    const width = 20;
    const fraction = Math.min(1, s.step / s.totalSteps);
    const filled = Math.round(fraction * width);
    const digits = String(s.totalSteps).length;
    return [
      `step ${String(s.step).padStart(digits)}/${s.totalSteps}`,
      `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`,
      `loss ${Number.isFinite(s.loss) ? s.loss.toFixed(4) : String(s.loss)}`,
      `lr ${s.lr.toExponential(2)}`,
      `${formatCount(s.tokensPerSecond)} tok/s`,
      `ETA ${formatDuration(s.etaSeconds)}`,
    ].join('  ');
  }

  update(s: ProgressState, force = false): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (!force && now - this.lastDraw < this.intervalMs && s.step < s.totalSteps) return;
    this.lastDraw = now;
    const line = TrainProgress.render(s);
    if (this.isTty) {
      this.stream.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else this.stream.write(line + '\n');
  }

  /** Prints a message on its own line without breaking the bar. */
  log(message: string): void {
    if (this.isTty && this.drawn) this.stream.write('\r\x1b[2K');
    this.sink(message);
    this.drawn = false;
    this.lastDraw = 0;
  }

  end(): void {
    if (this.isTty && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
