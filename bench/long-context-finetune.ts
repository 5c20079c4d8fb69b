// Long-context fine-tune of a checkpoint trained at a short length (the recipe of
// bench/results/long-context-eval.md): YaRN with factor s from the training length, then a short run at
// s × that length on the bundled corpus's training split, a share of the rows being passkey prompts (fresh
// numbers, random lengths and depths; the evaluation's own prompts use other seeds). Writes a checkpoint
// (config.json with the YaRN settings, model.safetensors, tokenizer.json) that `andromeda eval` reads.
//   node dist/bench/long-context-finetune.js <base checkpoint> <out dir> [--factor 4] [--steps 150]
//     [--lr 5e-4] [--passkey-share 0.5] [--seed 1] [--device cpu]
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import '../src/engine/index.js';
import { resolveDevice } from '../src/engine/registry.js';
import { Tensor } from '../src/tensor/tensor.js';
import { tidy } from '../src/tensor/scope.js';
import { Andromeda } from '../src/model/andromeda.js';
import { resolveConfig } from '../src/model/config.js';
import { saveCheckpoint } from '../src/model/weights-file.js';
import { loadCheckpoint } from '../src/train/run-checkpoint.js';
import { AdamW } from '../src/optim/adamw.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { defaultCorpusDocuments } from '../src/data/default-corpus.js';
import { Rng } from '../src/data/random.js';
import { applyPositionOverrides, describePositions } from '../src/eval/position-overrides.js';
import { passkeyPrompt } from '../src/eval/retrieval-prompts.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    factor: { type: 'string', default: '4' },
    steps: { type: 'string', default: '150' },
    lr: { type: 'string', default: '5e-4' },
    'passkey-share': { type: 'string', default: '0.5' },
    seed: { type: 'string', default: '1' },
    device: { type: 'string', default: 'cpu' },
  },
});
if (positionals.length !== 2) throw new Error('usage: long-context-finetune <base checkpoint> <out dir> [options]');
const [basePath, outDir] = positionals as [string, string];
const factor = Number(values.factor);
const steps = Number(values.steps);
const peakLr = Number(values.lr);
const passkeyShare = Number(values['passkey-share']);
const rng = new Rng(Number(values.seed));
const device = resolveDevice(values.device!);

const base = await loadCheckpoint(basePath, device);
if (!base.tokenizer) throw new Error(`${base.dir} has no tokenizer.json`);
const tokenizer = base.tokenizer;
const trainedLength = Number((base.trainer?.config as { seqLen?: number } | undefined)?.seqLen);
if (!(trainedLength > 0)) throw new Error(`${base.dir}: trainer.json records no training length`);
const seqLen = Math.round(factor * trainedLength);
const scaled = applyPositionOverrides(resolveConfig(base.modelConfig as never), { yarn: factor }, trainedLength);
const config = resolveConfig({ ...scaled, maxSeqLen: seqLen });
const model = new Andromeda(config, { device, initialize: false });
model.loadStateDict(base.weights);
for (const t of base.weights.values()) t.dispose();
console.log(`base ${base.dir} (trained at ${trainedLength}); fine-tune at ${seqLen}: ${describePositions(config)}`);

// The training split as one stream, documents separated by end-of-text, as the trainer packs them.
const pieces: number[] = [];
for await (const doc of defaultCorpusDocuments({ split: 'train' })) {
  for (const t of tokenizer.encode(doc.text)) pieces.push(t);
  pieces.push(tokenizer.eosId);
}
const stream = Int32Array.from(pieces);

function corpusRow(): Int32Array {
  const start = rng.nextInt(stream.length - seqLen - 1);
  return stream.subarray(start, start + seqLen + 1);
}

/** A passkey prompt of a random length up to seqLen with its answer, the key at a random depth. */
function passkeyRow(step: number): Int32Array {
  const length = trainedLength / 2 + rng.nextInt(seqLen - trainedLength / 2 - 16);
  const prompt = passkeyPrompt({ tokenizer, length, depth: rng.nextFloat(), seed: 1_000_000 + step });
  const answer = tokenizer.encode(` ${prompt.answer}.`);
  const row = new Int32Array(prompt.tokens.length + answer.length);
  row.set(prompt.tokens);
  row.set(answer, prompt.tokens.length);
  return row;
}

const optimizer = new AdamW(model.parameters(), { lr: peakLr, beta1: 0.9, beta2: 0.95, weightDecay: 0 });
const warmup = Math.max(1, Math.floor(steps / 10));
const started = Date.now();
let corpusLoss = 0;
let corpusRows = 0;
let passkeyLoss = 0;
let passkeyRows = 0;
for (let step = 1; step <= steps; step++) {
  const lr =
    step <= warmup
      ? (peakLr * step) / warmup
      : peakLr * (0.1 + 0.9 * 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / (steps - warmup))));
  optimizer.setHyper('lr', lr);
  const isPasskey = rng.nextFloat() < passkeyShare;
  const row = isPasskey ? passkeyRow(step) : corpusRow();
  const loss = tidy(() => {
    const l = model.loss(Tensor.fromArray(row, [1, row.length], 'int32', device));
    l.backward();
    return l.item();
  });
  clipGradNorm(model.parameters(), 1);
  optimizer.step();
  optimizer.zeroGrad();
  if (isPasskey) ((passkeyLoss += loss), passkeyRows++);
  else ((corpusLoss += loss), corpusRows++);
  if (step % 10 === 0 || step === steps) {
    console.log(
      `step ${step}/${steps} lr ${lr.toExponential(2)} ` +
        `corpus loss ${(corpusLoss / Math.max(corpusRows, 1)).toFixed(4)} (${corpusRows} rows) ` +
        `passkey-row loss ${(passkeyLoss / Math.max(passkeyRows, 1)).toFixed(4)} (${passkeyRows} rows) ` +
        `${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    corpusLoss = corpusRows = passkeyLoss = passkeyRows = 0;
  }
}
mkdirSync(outDir, { recursive: true });
saveCheckpoint(outDir, model);
const tokenizerFile = join(base.dir, 'tokenizer.json');
if (existsSync(tokenizerFile)) copyFileSync(tokenizerFile, join(outDir, 'tokenizer.json'));
console.log(`saved ${outDir} after ${((Date.now() - started) / 60000).toFixed(1)} min`);
model.dispose();
