// The online model alone on a file, for comparing `--online` settings quickly: a fresh model
// trained as `andromeda compress --online` trains it (same streams, context, overlap, learning rate
// and decay), its ideal code length (−log2 of each byte's probability; no coder, no header) overall
// and for each quarter of the streams, and with --dump the model's stretched probability for every
// coded bit (int16, in coding order) so context-mixer variants can be tried on it without the model
// (bench/compress-mixer-alone.ts --model-bits).
//   node dist/bench/compress-online-settings.js <file> [--streams 4] [--context 64] [--overlap 32]
//     [--lr 1.25e-3] [--lr-decay 3000|off] [--preset tiny] [--dump bits.i16]
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import '../src/engine/index.js';
import { buildOnlineModel, MIN_STREAM_BYTES, onlineModelSpec } from '../src/compress/index.js';
import { StreamPredictor } from '../src/compress/stream-predictor.js';
import { probabilityTree } from '../src/compress/byte-distribution.js';
import { modelBitStretch } from '../src/compress/byte-coders.js';

const { values, positionals } = parseArgs({
  options: {
    streams: { type: 'string', default: '4' },
    context: { type: 'string', default: '64' },
    overlap: { type: 'string', default: '32' },
    lr: { type: 'string', default: '1.25e-3' },
    'lr-decay': { type: 'string', default: '3000' },
    preset: { type: 'string', default: 'tiny' },
    dump: { type: 'string' },
  },
  allowPositionals: true,
});
if (positionals.length !== 1) throw new Error('usage: compress-online-settings <file> [options]');
const count = (name: string, raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return n;
};
const data = new Uint8Array(readFileSync(positionals[0]!));
const maxStreams = count('streams', values.streams);
const context = count('context', values.context);
const overlap = count('overlap', values.overlap);
const lrDecaySteps = values['lr-decay'] === 'off' ? undefined : count('lr-decay', values['lr-decay']);
const spec = onlineModelSpec({ preset: values.preset, seed: 0, learningRate: Number(values.lr), lrDecaySteps });
const model = buildOnlineModel(spec);
// The codec's layout: at most maxStreams streams of at least MIN_STREAM_BYTES, the last one shorter.
const streams = Math.min(maxStreams, Math.max(1, Math.ceil(data.length / MIN_STREAM_BYTES)));
const chunk = Math.ceil(data.length / streams);
const fed = Array.from({ length: streams }, (_, s) => {
  const row = new Int32Array(chunk + 1).fill(model.startToken);
  row.set(data.subarray(s * chunk, Math.min(data.length, (s + 1) * chunk)), 1);
  return row;
});
const predictor = new StreamPredictor(model.model, fed, {
  context,
  overlap,
  training: { learningRate: spec.learningRate, lrDecaySteps },
});
const vocab = model.model.config.vocabSize;
const tree = new Float64Array(512);
const dump = values.dump ? new Int16Array(data.length * 8) : null;
const quarters = [0, 0, 0, 0];
let bits = 0;
let dumped = 0;
const started = performance.now();
for (let t = 0; t < chunk; t++) {
  const logits = predictor.logitsAt(t);
  for (let s = 0; s < streams; s++) {
    if (s * chunk + t >= Math.min(data.length, (s + 1) * chunk)) continue;
    const byte = fed[s]![t + 1]!;
    probabilityTree(logits, s * vocab, tree);
    const cost = -Math.log2(tree[256 + byte]! / tree[1]!);
    bits += cost;
    quarters[Math.min(3, Math.floor((4 * t) / chunk))]! += cost;
    if (dump)
      for (let i = 7, partial = 1; i >= 0; i--) {
        dump[dumped++] = modelBitStretch(tree, partial);
        partial = (partial << 1) | ((byte >> i) & 1);
      }
  }
}
const seconds = (performance.now() - started) / 1000;
predictor.dispose();
model.dispose();
if (dump && values.dump) writeFileSync(values.dump, dump);
const perByte = (b: number, n: number) => (b / Math.max(1, n)).toFixed(4);
console.log(
  `${spec.name}, ${streams} streams, context ${context}, overlap ${overlap}: ${data.length} bytes, ` +
    `${perByte(bits, data.length)} bits per byte (ideal code; by quarter of the streams ` +
    `${quarters.map((q) => perByte(q * 4, data.length)).join(' ')}), ${predictor.trainingSteps} training steps, ` +
    `${seconds.toFixed(1)} s`,
);
