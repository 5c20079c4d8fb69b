import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { train } from '../../src/train/trainer.js';
import { readMetrics } from '../../src/train/metrics-log.js';
import { niceTicks, renderChart, renderPlotHtml } from '../../src/train/plot.js';
import { TrainProgress } from '../../src/train/training-progress.js';
import { quiet, smallDataset, tempDir, toyConfig } from './helpers.js';
import { toyFamily } from './toy-model.js';

/** A strict little XML checker: balanced tags, quoted attributes, known entities; returns element names. */
export function parseXml(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const tag =
    /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<!--[\s\S]*?-->|<[^>]*>|&(?!(amp|lt|gt|quot|#39);)/g;
  for (let m = tag.exec(xml); m; m = tag.exec(xml)) {
    if (m[0].startsWith('<!--')) continue;
    if (!m[2]) throw new Error(`malformed markup at ${m.index}: ${JSON.stringify(xml.slice(m.index, m.index + 60))}`);
    const [, close, name, , selfClose] = m;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at ${m.index}`);
    } else {
      names.push(name);
      if (!selfClose) stack.push(name);
    }
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(', ')}`);
  return names;
}

test('a short run writes a JSONL metrics log and a self-contained HTML plot with valid SVG charts', async () => {
  const data = await smallDataset();
  const out = await tempDir();
  const result = await train(toyConfig(data, out, { steps: 8, evalEvery: 4, checkpointEvery: 4 }), {
    family: toyFamily(8),
    ...quiet,
  });
  result.model.dispose();
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  for (const line of lines) JSON.parse(line);
  const records = readMetrics(join(out, 'metrics.jsonl'));
  const trainRecords = records.filter((r) => r.kind === 'train');
  assert.deepEqual(
    trainRecords.map((r) => r.step),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  for (const r of trainRecords) {
    assert.equal(r.kind, 'train');
    if (r.kind !== 'train') continue;
    assert.ok(r.loss > 0 && r.lr > 0 && r.tokensPerSecond > 0 && r.gradNorm > 0, JSON.stringify(r));
    assert.equal(r.tokens, 4 * 16);
  }
  const evals = records.filter((r) => r.kind === 'eval');
  assert.deepEqual(
    evals.map((r) => r.step),
    [4, 8],
  ); // periodic at 4, final at 8
  assert.ok(result.finalEval && result.finalEval.bitsPerByte > 0);

  const html = readFileSync(join(out, 'plot.html'), 'utf8');
  assert.match(html, /^<!DOCTYPE html>/);
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'no scripts or external resources');
  const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 4, 'loss, bits per byte, learning rate and throughput charts');
  for (const svg of svgs) {
    const names = parseXml(svg);
    assert.equal(names[0], 'svg');
    assert.ok(names.includes('polyline'), 'each chart draws a line');
    for (const m of svg.matchAll(/points="([^"]*)"/g)) {
      for (const pair of m[1].trim().split(/\s+/)) assert.match(pair, /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/);
    }
  }
  assert.match(html, /Held-out bits per byte/);
  assert.match(html, /unigram baseline/);
  parseXml(html.replace(/<!DOCTYPE html>/, '').replace(/<meta charset="utf-8">/, ''));
});

test('charts handle empty series, single points and non-finite values', () => {
  const empty = renderChart({
    title: 'x & y',
    xLabel: 's',
    yLabel: 'l',
    series: [{ label: 'a', color: '#000', points: [] }],
  });
  assert.match(empty, /no data yet/);
  assert.match(empty, /x &amp; y/);
  parseXml(empty);
  const one = renderChart({
    title: 't',
    xLabel: 's',
    yLabel: 'l',
    series: [
      {
        label: 'a',
        color: '#000',
        points: [
          [1, 2],
          [2, NaN],
          [3, Infinity],
        ],
      },
    ],
  });
  parseXml(one);
  assert.doesNotMatch(one, /NaN|Infinity/);
  const html = renderPlotHtml([], { title: '<run>' });
  assert.match(html, /&lt;run&gt;/);
});

test('nice ticks cover the range with round steps', () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(1.3, 2.9, 4), [1.5, 2, 2.5]);
  assert.ok(niceTicks(5, 5).length > 0);
});

test('progress line shows step, loss, lr, throughput and ETA', () => {
  const line = TrainProgress.render({
    step: 50,
    totalSteps: 200,
    loss: 2.34567,
    lr: 3e-4,
    tokensPerSecond: 12345,
    etaSeconds: 125,
  });
  assert.match(line, /step  50\/200/);
  assert.match(line, /\[#####-+\]/);
  assert.match(line, /loss 2\.3457/);
  assert.match(line, /lr 3\.00e-4/);
  assert.match(line, /12\.3k tok\/s/);
  assert.match(line, /ETA 2m05s/);
});

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) =>
  existsSync(p),
);

test(
  'the plot renders in a headless browser (when Chromium is installed)',
  { skip: chromium ? false : 'no chromium on this machine', timeout: 90_000 },
  async () => {
    const data = await smallDataset();
    const out = await tempDir();
    const result = await train(toyConfig(data, out, { steps: 6, evalEvery: 3, checkpointEvery: 0 }), {
      family: toyFamily(8),
      ...quiet,
    });
    result.model.dispose();
    const png = join(out, 'plot.png');
    const r = spawnSync(
      chromium!,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        `--screenshot=${png}`,
        '--window-size=800,1300',
        `file://${join(out, 'plot.html')}`,
      ],
      { timeout: 80_000 },
    );
    assert.ok(existsSync(png), `chromium wrote no screenshot: ${r.stderr?.toString().slice(-500)}`);
    const bytes = readFileSync(png);
    assert.equal(bytes.subarray(1, 4).toString(), 'PNG');
    assert.ok(bytes.length > 20_000, `a screenshot with charts is not tiny (${bytes.length} bytes)`);
  },
);
