// The context mixer of `andromeda compress --mix on` without a language model: the same streams
// and coding order, the model's input held at P = 1/2 (stretch 0), and the ideal code length
// (−log2 of each coded bit's probability; the range coder adds a few bytes and the header ~400).
// Set beside `--mix on` it shows what the language model adds to the mix, and beside `--mix off`
// what the mixer adds to the model. With --model-bits (a dump of bench/compress-online-settings.ts
// for the same file and streams) the model's recorded probabilities are mixed in instead: the
// mixed code length without rerunning the model, for trying mixer variants.
//   node dist/bench/compress-mixer-alone.js <file> [--streams 4] [--model-bits bits.i16]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ContextMixer } from '../src/compress/context-mixer.js';
import { MIN_STREAM_BYTES } from '../src/compress/codec.js';
import { PROBABILITY_ONE } from '../src/compress/logistic.js';

const { values, positionals } = parseArgs({
  options: { streams: { type: 'string', default: '4' }, 'model-bits': { type: 'string' } },
  allowPositionals: true,
});
if (positionals.length !== 1) throw new Error('usage: compress-mixer-alone <file> [--streams n]');
const maxStreams = Number(values.streams);
if (!Number.isInteger(maxStreams) || maxStreams < 1)
  throw new Error(`--streams must be a positive integer, got ${values.streams}`);
const data = new Uint8Array(readFileSync(positionals[0]!));
// The codec's layout: at most maxStreams streams of at least MIN_STREAM_BYTES, the last one shorter.
const streams = Math.min(maxStreams, Math.max(1, Math.ceil(data.length / MIN_STREAM_BYTES)));
const chunk = Math.ceil(data.length / streams);
const modelBits = values['model-bits']
  ? new Int16Array(new Uint8Array(readFileSync(values['model-bits'])).buffer)
  : null;
if (modelBits && modelBits.length !== 8 * data.length)
  throw new Error(
    `--model-bits ${values['model-bits']} holds ${modelBits.length} bits' probabilities, not ${8 * data.length}`,
  );
const mixer = new ContextMixer(data, { streams, chunk });
let coded = 0;
const started = performance.now();
let bits = 0;
for (let t = 0; t < chunk; t++)
  for (let s = 0; s < streams; s++) {
    const offset = s * chunk + t;
    if (offset >= Math.min(data.length, (s + 1) * chunk)) continue;
    mixer.beginByte(s);
    for (let i = 7; i >= 0; i--) {
      const bit = (data[offset]! >> i) & 1;
      const p = mixer.predictBit(modelBits ? modelBits[coded++]! : 0) / PROBABILITY_ONE;
      bits -= Math.log2(bit ? p : 1 - p);
      mixer.updateBit(bit);
    }
  }
const seconds = (performance.now() - started) / 1000;
console.log(
  `context mixer ${modelBits ? "with the model's recorded probabilities" : 'alone'}, ${streams} streams: ` +
    `${data.length} bytes, ${(bits / 8).toFixed(0)} bytes of ideal code, ` +
    `${(bits / Math.max(1, data.length)).toFixed(4)} bits per byte, ${seconds.toFixed(1)} s`,
);
