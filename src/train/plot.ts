/**
 * A self-contained HTML page (no scripts, no external files) with inline SVG charts of a run:
 * training and held-out loss, learning rate and throughput against the step. Written next to
 * the checkpoints as <out>/plot.html and refreshed at every evaluation and checkpoint.
 */
import { renameSync, writeFileSync } from 'node:fs';
import type { EvalRecord, MetricRecord, TrainRecord } from './metrics-log.js';

export interface Series {
  label: string;
  color: string;
  points: Array<[number, number]>;
  /** Draw markers instead of only a line (sparse series such as evaluations). */
  markers?: boolean;
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /** Format of y tick labels. */
  formatY?: (v: number) => string;
}

export interface PlotInfo {
  title: string;
  /** Lines of text shown under the title (run configuration, final numbers). */
  notes?: string[];
  /** Horizontal reference lines on the loss chart, e.g. the unigram baseline. */
  lossReferences?: Array<{ label: string; value: number }>;
}

export const escapeXml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi === lo) {
    const pad = Math.abs(lo) > 0 ? Math.abs(lo) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function formatNumber(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(v / 1e3).toPrecision(3)}k`;
  if (a < 1e-2) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

/** One chart as an <svg> element string. */
export function renderChart(o: ChartOptions): string {
  const width = o.width ?? 720;
  const height = o.height ?? 260;
  const m = { left: 64, right: 16, top: 28, bottom: 40 };
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const all = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" ` +
      `width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" ` +
      `aria-label="${escapeXml(o.title)}">`,
  );
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  parts.push(`<text x="${m.left}" y="18" font-size="14" font-weight="bold" fill="#222">${escapeXml(o.title)}</text>`);
  if (all.length === 0) {
    parts.push(
      `<text x="${width / 2}" y="${height / 2}" text-anchor="middle" font-size="12" fill="#888">no data yet</text>`,
    );
    parts.push('</svg>');
    return parts.join('\n');
  }
  let xMin = Math.min(...all.map((p) => p[0]));
  let xMax = Math.max(...all.map((p) => p[0]));
  let yMin = Math.min(...all.map((p) => p[1]));
  let yMax = Math.max(...all.map((p) => p[1]));
  if (xMax === xMin) xMax = xMin + 1;
  if (yMax === yMin) {
    yMax += Math.abs(yMax) * 0.05 || 1;
    yMin -= Math.abs(yMin) * 0.05 || 1;
  }
  const yPad = (yMax - yMin) * 0.05;
  yMin -= yPad;
  yMax += yPad;
  if (yMin < 0 && all.every((p) => p[1] >= 0)) yMin = 0;
  const xs = (x: number) => m.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const ys = (y: number) => m.top + (1 - (y - yMin) / (yMax - yMin)) * plotH;
  const fy = o.formatY ?? formatNumber;

  parts.push(`<g font-size="11" fill="#444">`);
  for (const t of niceTicks(yMin, yMax)) {
    if (t < yMin || t > yMax) continue;
    const y = ys(t).toFixed(1);
    parts.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + plotW}" y2="${y}" stroke="#e6e6e6"/>`);
    parts.push(
      `<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(fy(t))}</text>`,
    );
  }
  for (const t of niceTicks(xMin, xMax, 6)) {
    if (t < xMin || t > xMax) continue;
    const x = xs(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${m.top + plotH}" x2="${x}" y2="${m.top + plotH + 4}" stroke="#888"/>`);
    parts.push(`<text x="${x}" y="${m.top + plotH + 16}" text-anchor="middle">${escapeXml(formatNumber(t))}</text>`);
  }
  parts.push(`</g>`);
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  parts.push(
    `<text x="${m.left + plotW / 2}" y="${height - 6}" text-anchor="middle" font-size="12" ` +
      `fill="#222">${escapeXml(o.xLabel)}</text>`,
  );
  parts.push(
    `<text x="14" y="${m.top + plotH / 2}" text-anchor="middle" font-size="12" fill="#222" ` +
      `transform="rotate(-90 14 ${m.top + plotH / 2})">${escapeXml(o.yLabel)}</text>`,
  );

  let legendX = m.left + plotW;
  const legend: string[] = [];
  for (const s of [...o.series].reverse()) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length > 0) {
      const path = pts.map(([x, y]) => `${xs(x).toFixed(1)},${ys(y).toFixed(1)}`).join(' ');
      parts.push(
        `<polyline points="${path}" fill="none" ` +
          `stroke="${s.color}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
      );
      if (s.markers)
        for (const [x, y] of pts)
          parts.push(`<circle cx="${xs(x).toFixed(1)}" cy="${ys(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    }
    const w = 18 + s.label.length * 6.2;
    legendX -= w + 10;
    legend.push(
      `<line x1="${legendX.toFixed(1)}" y1="14" x2="${(legendX + 14).toFixed(1)}" y2="14" ` +
        `stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/>`,
    );
    legend.push(
      `<text x="${(legendX + 18).toFixed(1)}" y="18" font-size="11" fill="#222">${escapeXml(s.label)}</text>`,
    );
  }
  parts.push(...legend);
  parts.push('</svg>');
  return parts.join('\n');
}

/** Keeps at most `max` points (evenly strided, always the last) so long runs stay light. */
function thin(points: Array<[number, number]>, max = 2000): Array<[number, number]> {
  if (points.length <= max) return points;
  const stride = points.length / max;
  const out: Array<[number, number]> = [];
  for (let i = 0; i < max; i++) out.push(points[Math.floor(i * stride)]);
  out.push(points[points.length - 1]);
  return out;
}

/** The page for a run's metric records. */
export function renderPlotHtml(records: readonly MetricRecord[], info: PlotInfo): string {
  const train = records.filter((r): r is TrainRecord => r.kind === 'train');
  const evals = records.filter((r): r is EvalRecord => r.kind === 'eval');
  const finiteTrain = train.filter((r) => Number.isFinite(r.loss));
  const lastStep = train.length ? train[train.length - 1].step : 0;
  const lossSeries: Series[] = [
    { label: 'train loss', color: '#1f77b4', points: thin(finiteTrain.map((r) => [r.step, r.loss])) },
    { label: 'held-out loss', color: '#d62728', points: evals.map((r) => [r.step, r.loss]), markers: true },
  ];
  for (const ref of info.lossReferences ?? []) {
    const x0 = train.length ? train[0].step : 0;
    lossSeries.push({
      label: ref.label,
      color: '#7f7f7f',
      dashed: true,
      points: [
        [x0, ref.value],
        [Math.max(lastStep, x0 + 1), ref.value],
      ],
    });
  }
  const charts = [
    renderChart({ title: 'Loss (nats/token)', xLabel: 'step', yLabel: 'loss', series: lossSeries }),
    renderChart({
      title: 'Learning rate',
      xLabel: 'step',
      yLabel: 'lr',
      series: [{ label: 'lr', color: '#2ca02c', points: thin(train.map((r) => [r.step, r.lr])) }],
      formatY: (v) => v.toExponential(1),
    }),
    renderChart({
      title: 'Throughput',
      xLabel: 'step',
      yLabel: 'tokens / s',
      series: [{ label: 'tokens/s', color: '#9467bd', points: thin(train.map((r) => [r.step, r.tokensPerSecond])) }],
    }),
  ];
  if (evals.length > 0) {
    charts.splice(
      1,
      0,
      renderChart({
        title: 'Held-out bits per byte',
        xLabel: 'step',
        yLabel: 'bits/byte',
        series: [
          { label: 'held-out bpb', color: '#ff7f0e', points: evals.map((r) => [r.step, r.bitsPerByte]), markers: true },
        ],
      }),
    );
  }
  const notes = (info.notes ?? []).map((n) => `<li>${escapeXml(n)}</li>`).join('\n');
  return (
    `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeXml(info.title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}figure{margin:16px ` +
    `0}ul{font-size:13px;color:#444}</style>
</head>
<body>
<h1 style="font-size:18px">${escapeXml(info.title)}</h1>
<ul>
${notes}
<li>${train.length} training steps logged, ${evals.length} evaluations; last ` +
    `step ${lastStep}; generated ${escapeXml(new Date().toISOString())}</li>
</ul>
${charts.map((c) => `<figure>\n${c}\n</figure>`).join('\n')}
</body>
</html>
`
  );
}

/** Writes the page atomically (temporary file, then rename). */
export function writePlot(path: string, records: readonly MetricRecord[], info: PlotInfo): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, renderPlotHtml(records, info));
  renameSync(tmp, path);
}
