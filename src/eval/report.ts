/**
 * How an evaluation is shown: tables for the terminal and a self-contained HTML page (the training plot's
 * SVG charts, no scripts or external files).
 */
import { renameSync, writeFileSync } from 'node:fs';
import { escapeXml, renderChart, type Series } from '../train/plot.js';
import type { EvalReport, ModelReport, RetrievalTable } from './run-eval.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** "0–512", "512–1k", "1k–2k", "2k–4k". */
export function bucketLabel(start: number, end: number): string {
  const short = (n: number): string => (n >= 1024 && n % 1024 === 0 ? `${n / 1024}k` : String(n));
  return `${short(start)}–${short(end)}`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const percent = (x: number): string => `${(100 * x).toFixed(0)}%`;

const taskName = (t: RetrievalTable): string => (t.task === 'passkey' ? 'passkey' : 'needle in a haystack');

const accuracyAt = (t: RetrievalTable, length: number, depth: number): number =>
  t.cells.find((c) => c.length === length && c.depth === depth)!.accuracy;

function lossTable(m: ModelReport): string {
  const curve = m.loss!;
  const reference = curve.lossAtTrainingLength;
  const rows = curve.buckets.map((b) => [
    bucketLabel(b.start, b.end),
    String(b.tokens),
    b.loss.toFixed(4),
    b.bitsPerByte.toFixed(4),
    reference === null ? '–' : (b.loss / reference).toFixed(3),
    b.lossUpToEnd.toFixed(4),
  ]);
  return table(['positions', 'predictions', 'loss', 'bits/byte', `÷ loss@${m.trainingLength}`, 'loss up to end'], rows);
}

function retrievalTableText(t: RetrievalTable): string {
  const depths = [...new Set(t.cells.map((c) => c.depth))];
  const rows = t.byLength.map(({ length, accuracy }) => [
    String(length),
    ...depths.map((d) => percent(accuracyAt(t, length, d))),
    percent(accuracy),
  ]);
  return table(['length \\ depth', ...depths.map((d) => d.toFixed(2)), 'all'], rows);
}

/** The report as terminal text: per model, the loss by position bucket and the retrieval tables. */
export function formatReport(r: EvalReport): string {
  const out: string[] = [];
  for (const m of r.models) {
    out.push(
      `== ${m.label}: ${m.checkpoint} (step ${m.step}, ${m.parameters} parameters, trained at ${m.trainingLength})`,
    );
    out.push(
      `   positions: ${m.evaluatedPositions}` +
        (m.evaluatedPositions !== m.trainedPositions ? ` (trained: ${m.trainedPositions})` : ''),
    );
    if (m.loss) {
      out.push(`   loss by position (${m.loss.windows} windows of ${m.loss.length} from ${m.loss.source}):`);
      out.push(indent(lossTable(m)));
    }
    for (const t of [m.passkey, m.needle]) {
      if (!t) continue;
      out.push(`   ${taskName(t)} accuracy (${t.cells[0]?.trials ?? 0} prompts per cell): ${percent(t.accuracy)}`);
      out.push(indent(retrievalTableText(t)));
    }
    out.push(`   ${m.seconds.toFixed(1)} s`);
    out.push('');
  }
  return out.join('\n');
}

const indent = (s: string): string =>
  s
    .split('\n')
    .map((l) => `   ${l}`)
    .join('\n');

function retrievalHtml(m: ModelReport, t: RetrievalTable): string {
  const depths = [...new Set(t.cells.map((c) => c.depth))];
  const cell = (accuracy: number): string => {
    // Red (0%) to green (100%), light enough for black text.
    const hue = Math.round(120 * accuracy);
    return `<td style="background:hsl(${hue},70%,80%)">${percent(accuracy)}</td>`;
  };
  const rows = t.byLength
    .map(
      ({ length, accuracy }) =>
        `<tr><th>${length}</th>${depths.map((d) => cell(accuracyAt(t, length, d))).join('')}` +
        `${cell(accuracy)}</tr>`,
    )
    .join('\n');
  const title = `${m.label}: ${t.task === 'passkey' ? 'passkey retrieval' : taskName(t)} (${percent(t.accuracy)})`;
  return (
    `<h2>${escapeXml(title)}</h2>\n<table><tr><th>length \\ depth</th>` +
    `${depths.map((d) => `<th>${d.toFixed(2)}</th>`).join('')}<th>all</th></tr>\n${rows}\n</table>`
  );
}

/** The page: loss, bits per byte and loss relative to the training length against position; retrieval grids. */
export function renderEvalHtml(r: EvalReport, title = 'andromeda eval'): string {
  const withLoss = r.models.filter((m) => m.loss);
  // Each bucket's value is drawn across its positions, from its start to its end (a step line).
  const series = (value: (m: ModelReport, i: number) => number | null): Series[] =>
    withLoss.map((m, k) => ({
      label: m.label,
      color: COLORS[k % COLORS.length]!,
      points: m.loss!.buckets.flatMap((b, i): Array<[number, number]> => {
        const v = value(m, i);
        return v === null
          ? []
          : [
              [b.start, v],
              [b.end, v],
            ];
      }),
    }));
  const charts: string[] = [];
  if (withLoss.length > 0) {
    charts.push(
      renderChart({
        title: 'Held-out loss by position bucket',
        xLabel: 'position',
        yLabel: 'nats / token',
        series: series((m, i) => m.loss!.buckets[i]!.loss),
      }),
      renderChart({
        title: 'Loss relative to the loss at the training length',
        xLabel: 'position',
        yLabel: 'ratio',
        series: series((m, i) =>
          m.loss!.lossAtTrainingLength === null ? null : m.loss!.buckets[i]!.loss / m.loss!.lossAtTrainingLength,
        ),
      }),
      renderChart({
        title: 'Held-out bits per byte by position',
        xLabel: 'position',
        yLabel: 'bits / byte',
        series: series((m, i) => m.loss!.buckets[i]!.bitsPerByte),
      }),
    );
  }
  const notes = r.models
    .map(
      (m) =>
        `<li>${escapeXml(
          `${m.label}: ${m.checkpoint}, step ${m.step}, trained at ${m.trainingLength}; ${m.evaluatedPositions}`,
        )}</li>`,
    )
    .join('\n');
  const retrieval = r.models.flatMap((m) => [m.passkey, m.needle].filter((t) => t).map((t) => retrievalHtml(m, t!)));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeXml(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}figure{margin:16px 0}ul{font-size:13px;color:#444}
table{border-collapse:collapse;font-size:13px;margin-bottom:16px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
h2{font-size:15px}</style>
</head>
<body>
<h1 style="font-size:18px">${escapeXml(title)}</h1>
<ul>
${notes}
<li>device ${escapeXml(r.device)}; generated ${escapeXml(new Date().toISOString())}</li>
</ul>
${charts.map((c) => `<figure>\n${c}\n</figure>`).join('\n')}
${retrieval.join('\n')}
</body>
</html>
`;
}

/** Writes the page atomically (temporary file, then rename). */
export function writeEvalHtml(path: string, r: EvalReport): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, renderEvalHtml(r));
  renameSync(tmp, path);
}
