/** A small progress bar for stderr: redrawn in place on a terminal, an occasional plain line otherwise. */

export interface ProgressOptions {
  label: string;
  /** Total units (e.g. bytes); 0 or undefined when unknown. */
  total?: number;
  /** How to print amounts. Default: bytes (kB/MB/GB). */
  format?: (units: number) => string;
  stream?: NodeJS.WriteStream;
  /** Minimum milliseconds between redraws. Default 100 on a terminal, 5000 otherwise. */
  intervalMs?: number;
}

export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly isTty: boolean;
  private readonly intervalMs: number;
  private readonly startedAt = Date.now();
  private lastDraw = 0;
  private done = 0;
  private note = '';
  private finished = false;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.isTty = this.stream.isTTY === true;
    this.intervalMs = options.intervalMs ?? (this.isTty ? 100 : 5000);
  }

  /** Sets the amount done (and an optional note such as a token count); redraws if due. */
  update(done: number, note?: string): void {
    this.done = done;
    if (note !== undefined) this.note = note;
    const now = Date.now();
    if (now - this.lastDraw >= this.intervalMs) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  finish(note?: string): void {
    if (this.finished) return;
    if (note !== undefined) this.note = note;
    this.finished = true;
    this.draw(true);
  }

  /** The current line, without terminal control characters. */
  render(): string {
    const format = this.options.format ?? formatBytes;
    const total = this.options.total ?? 0;
    const seconds = (Date.now() - this.startedAt) / 1000;
    const rate = seconds > 0 ? this.done / seconds : 0;
    const parts = [this.options.label];
    if (total > 0) {
      const fraction = Math.min(1, this.done / total);
      const width = 24;
      const filled = Math.round(fraction * width);
      parts.push(`[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`);
      parts.push(`${format(this.done)}/${format(total)}`);
      if (rate > 0 && fraction < 1) parts.push(`ETA ${formatDuration((total - this.done) / rate)}`);
    } else {
      parts.push(format(this.done));
    }
    if (rate > 0) parts.push(`${format(rate)}/s`);
    if (this.note) parts.push(this.note);
    return parts.join('  ');
  }

  private draw(final: boolean): void {
    const line = this.render();
    if (this.isTty) this.stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    else this.stream.write(line + '\n');
  }
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${Math.round(n)} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n / 1000;
  let i = 0;
  while (value >= 1000 && i < units.length - 1) {
    value /= 1000;
    i++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatCount(n: number): string {
  if (n < 1e3) return String(Math.round(n));
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(2)}M`;
  return `${(n / 1e9).toFixed(2)}G`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}
