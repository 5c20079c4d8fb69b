// Training-step figures on the CUDA engine with mixed precision: bf16 weights and activations,
// float32 master weights, AdamW with float32 or 8-bit moments, global-norm clipping. Attention is the
// model's choice ('auto': the fused kernels where the engine has them) or, with
// ANDROMEDA_BENCH_ATTENTION=reference, the reference form.
//   node dist/bench/gpu-train-step.js <preset> <batch> <seqLen> [steps] [options]
//     --optimizer adamw|adamw8bit   float32 (default) or 8-bit block-quantized moments
//     --loss auto|chunked|full      the head's cross-entropy a block of rows at a time (never every logit at
//                                   once) or from the full logits; auto (default) chunks above one block of rows
//     --checkpoint                  activation checkpointing (as ANDROMEDA_BENCH_CHECKPOINT=1)
//     --data corpus|random          one fixed batch: the bundled corpus as UTF-8 bytes (default; its loss falls
//                                   step by step as the model learns it) or uniformly random tokens
//     --device cuda|cpu             cpu runs the same step on the CPU engine (a smoke test with a tiny preset)
// The bench drives the model directly (not the trainer, to time one step without data loading) with the
// arrangement of src/train/precision.ts: the model is built in bf16, each step's bf16 gradients become the
// gradients of the float32 masters, and the optimizer updates the masters and writes them back into the bf16
// weights (one many-tensor launch on CUDA: Engine.adamwMany / adamw8bitMany).
import { parseArgs } from 'node:util';
import { getEngine } from '../src/engine/index.js';
import type { CudaEngine } from '../src/engine/cuda.js';
import { Andromeda } from '../src/model/andromeda.js';
import { Tensor } from '../src/tensor/tensor.js';
import { tidy, keep } from '../src/tensor/scope.js';
import { noGrad } from '../src/autograd/grad-mode.js';
import { cast } from '../src/ops/convert.js';
import { reshape } from '../src/ops/layout.js';
import { crossEntropy } from '../src/ops/nn.js';
import {
  chunkedLinearCrossEntropy,
  DEFAULT_CROSS_ENTROPY_CHUNK_ROWS,
  lossIsChunked,
} from '../src/ops/chunked-cross-entropy.js';
import { clipAndStep, gradNorm } from '../src/optim/clip.js';
import { AdamW } from '../src/optim/adamw.js';
import { AdamW8bit } from '../src/optim/adamw8bit.js';
import { encodeHost, DTYPE_BYTES } from '../src/tensor/dtype.js';
import { Generator } from '../src/tensor/random.js';
import { resetProfile } from '../src/engine/cuda-profile.js';
import { defaultCorpusDocuments } from '../src/data/default-corpus.js';

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    optimizer: { type: 'string', default: 'adamw' },
    loss: { type: 'string', default: 'auto' },
    checkpoint: { type: 'boolean', default: false },
    data: { type: 'string', default: 'corpus' },
    device: { type: 'string' },
  },
});
const [preset = 'orca', batchArg = '1', seqArg = '2048', stepsArg = '6'] = positionals;
const batch = Number(batchArg),
  seqLen = Number(seqArg),
  steps = Number(stepsArg);
function refuse(message: string): never {
  console.error(`gpu-train-step: ${message}`);
  process.exit(2);
}
for (const [name, value] of [
  ['batch', batch],
  ['seqLen', seqLen],
  ['steps', steps],
] as const)
  if (!Number.isInteger(value) || value < 1) refuse(`${name} must be a positive integer, got '${value}'`);
const optimizerKind = flags.optimizer!;
if (optimizerKind !== 'adamw' && optimizerKind !== 'adamw8bit')
  refuse(`--optimizer must be adamw or adamw8bit, got '${optimizerKind}'`);
const lossMode = flags.loss!;
if (lossMode !== 'auto' && lossMode !== 'chunked' && lossMode !== 'full')
  refuse(`--loss must be auto, chunked or full, got '${lossMode}'`);
const chunkedLoss = lossMode === 'chunked' || (lossMode === 'auto' && lossIsChunked(batch * seqLen));
const dataKind = flags.data!;
if (dataKind !== 'corpus' && dataKind !== 'random') refuse(`--data must be corpus or random, got '${dataKind}'`);
const device = flags.device ?? process.env.ANDROMEDA_BENCH_DEVICE ?? 'cuda';
const gpu = getEngine(device) as CudaEngine;
// The optimizer path: clipAndStep (the sum of squares left on the device, the many-tensor AdamW launch clipping
// from it and writing the bf16 weights as shadows in its pass, the norm read after both are enqueued).
// ANDROMEDA_BENCH_CLIP=host waits for the norm on the host first (gradNorm, then the step with its scale);
// ANDROMEDA_BENCH_PLAIN=1 loops over the tensors with the one-tensor kernels instead (sumOfSquares per tensor,
// adamw + cast copy), for comparison.
const fused = process.env.ANDROMEDA_BENCH_PLAIN !== '1';
const hostClip = process.env.ANDROMEDA_BENCH_CLIP === 'host';
if (!fused && optimizerKind === 'adamw8bit') refuse('ANDROMEDA_BENCH_PLAIN=1 compares float32 AdamW paths only');
// ANDROMEDA_BENCH_ATTENTION=reference forces the reference attention (default: the model's 'auto').
const attention = (process.env.ANDROMEDA_BENCH_ATTENTION ?? 'auto') as 'auto' | 'fused' | 'reference';
// Activation checkpointing: each block recomputed in the backward pass.
const checkpointBlocks = flags.checkpoint! || process.env.ANDROMEDA_BENCH_CHECKPOINT === '1';
// ANDROMEDA_BENCH_DOCUMENT_TOKENS=L: packed documents (the training recipe's layout), lengths drawn evenly from
// [L/2, 3L/2], passed as segment ids (boundary masks in attention and token shift, positions restarting per document).
const documentTokens = Number(process.env.ANDROMEDA_BENCH_DOCUMENT_TOKENS ?? 0);
const GiB = 2 ** 30;

/** Fills a bf16 parameter with normal(0, std) values from a repeated random block (fast, never zeros). */
function randomize(t: Tensor, std: number, gen: Generator): void {
  const block = 1 << 20;
  const values = new Float64Array(block + 4099);
  for (let i = 0; i < values.length; i++) values[i] = std * gen.normal();
  const raw = encodeHost(t.dtype, values);
  const bytes = DTYPE_BYTES[t.dtype];
  for (let at = 0, shift = 0; at < t.size; at += block, shift = (shift + 1031) % 4099) {
    const n = Math.min(block, t.size - at);
    gpu.upload(
      t.storage.handle,
      (t.offset + at) * bytes,
      new Uint8Array(raw.buffer, raw.byteOffset + shift * bytes, n * bytes),
    );
  }
}

const t0 = performance.now();
// initialize: false skips the model's second (host-side) initialisation pass; matrices are
// randomised on upload below, vectors (norm weights, scales) keep their constructed values.
const model = Andromeda.fromPreset(
  preset,
  { maxSeqLen: Math.max(seqLen, 8192) },
  { device, dtype: 'bfloat16', initialize: false },
);
const gen = new Generator(1);
const params = model.parameters();
for (const p of params) if (p.rank >= 2) randomize(p, 0.02, gen);
const paramCount = params.reduce((n, p) => n + p.size, 0);
const masters = noGrad(() => params.map((p) => keep(cast(p, 'float32')).requireGrad(true)));
const hyper = { lr: 1e-4, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
const optimizer = optimizerKind === 'adamw8bit' ? new AdamW8bit(masters, hyper) : new AdamW(masters, hyper);
if (fused) optimizer.setShadows(new Map(masters.map((m, i) => [m, params[i]!])));
// The plain path's own moments (the optimizer keeps its own).
const moments = fused
  ? []
  : masters.map((m) => {
      const mm = keep(Tensor.empty(m.shape, 'float32', device)),
        vv = keep(Tensor.empty(m.shape, 'float32', device));
      gpu.fill(mm.dense(), m.size, 0);
      gpu.fill(vv.dense(), m.size, 0);
      return { m: mm, v: vv };
    });
gpu.synchronize();
const setupSeconds = (performance.now() - t0) / 1000;
console.log(`# setup done in ${setupSeconds.toFixed(1)} s; stepping`);

const c = model.config;
const rowTokens = batch * (seqLen + 1);
const rowsHost = dataKind === 'corpus' ? await corpusTokens(rowTokens) : randomTokens(rowTokens);
// One fixed batch, next-token targets within each row of seqLen + 1 tokens.
const inputsHost = new Int32Array(batch * seqLen),
  targetsHost = new Int32Array(batch * seqLen);
for (let b = 0; b < batch; b++) {
  inputsHost.set(rowsHost.subarray(b * (seqLen + 1), b * (seqLen + 1) + seqLen), b * seqLen);
  targetsHost.set(rowsHost.subarray(b * (seqLen + 1) + 1, (b + 1) * (seqLen + 1)), b * seqLen);
}
const tokens = keep(Tensor.fromArray(inputsHost, [batch, seqLen], 'int32', device));
const targets = keep(Tensor.fromArray(targetsHost, [batch * seqLen], 'int32', device));

function randomTokens(count: number): Int32Array {
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.floor(gen.uniform() * c.vocabSize);
  return out;
}

/** The bundled corpus's documents as UTF-8 byte ids, an end-of-document id (256) after each, repeated to `count`. */
async function corpusTokens(count: number): Promise<Int32Array> {
  const endOfDocument = 256;
  if (c.vocabSize <= endOfDocument)
    refuse(`--data corpus needs a vocabulary above 256 tokens, ${preset} has ${c.vocabSize}`);
  const out = new Int32Array(count);
  let filled = 0;
  while (filled < count) {
    const before = filled;
    for await (const doc of defaultCorpusDocuments({ split: 'train' })) {
      for (const byte of Buffer.from(doc.text, 'utf8')) {
        if (filled === count) return out;
        out[filled++] = byte;
      }
      if (filled === count) return out;
      out[filled++] = endOfDocument;
    }
    if (filled === before) refuse('the bundled corpus has no training documents');
  }
  return out;
}

let segmentIds: Int32Array | undefined;
if (documentTokens > 0) {
  segmentIds = new Int32Array(batch * seqLen);
  const length = (): number => Math.max(1, Math.round(documentTokens * (0.5 + gen.uniform())));
  for (let b = 0; b < batch; b++) {
    let doc = 0,
      left = length();
    for (let t = 0; t < seqLen; t++) {
      segmentIds[b * seqLen + t] = doc;
      if (--left === 0) {
        doc++;
        left = length();
      }
    }
  }
}

let stepCount = 0;
function trainStep(): { loss: number; fwdBwd: number; issue: number; optim: number; norm: number } {
  const s0 = performance.now();
  let issued = s0;
  const loss = tidy(() => {
    const forward = { attentionImplementation: attention, activationCheckpointing: checkpointBlocks, segmentIds };
    let l: Tensor;
    if (chunkedLoss) {
      const hidden = model.hiddenStates(tokens, forward);
      const head = model.outputHead;
      l = chunkedLinearCrossEntropy(reshape(hidden, [batch * seqLen, c.dim]), head.weight, head.bias, targets);
    } else l = crossEntropy(reshape(model.forward(tokens, forward), [batch * seqLen, c.vocabSize]), targets);
    l.backward();
    issued = performance.now(); // the host has enqueued the whole forward and backward pass
    return l.item();
  });
  gpu.synchronize();
  const s1 = performance.now();
  // The bf16 gradients become the masters' gradients (AdamW reads any float dtype).
  for (let i = 0; i < params.length; i++) {
    masters[i]!.grad = params[i]!.grad;
    params[i]!.grad = null;
  }
  stepCount++;
  let norm: number;
  if (fused && !hostClip) {
    norm = clipAndStep(optimizer, masters, 1).norm;
  } else if (fused) {
    norm = gradNorm(masters);
    optimizer.step({ gradScale: Number.isFinite(norm) && norm > 1 ? 1 / (norm + 1e-6) : 1 });
  } else {
    norm = Math.sqrt(masters.reduce((sum, m) => sum + (m.grad ? gpu.sumOfSquares(m.grad.dense(), m.size) : 0), 0));
    const scale = Number.isFinite(norm) && norm > 1 ? 1 / (norm + 1e-6) : 1;
    const args = {
      ...hyper,
      biasCorrection1: 1 - hyper.beta1 ** stepCount,
      biasCorrection2: 1 - hyper.beta2 ** stepCount,
      gradScale: scale,
    };
    for (let i = 0; i < params.length; i++) {
      const p = params[i]!,
        master = masters[i]!,
        { m, v } = moments[i]!;
      if (!master.grad) continue;
      gpu.adamw(master.dense(), master.grad.dense(), m.dense(), v.dense(), p.size, args);
      gpu.copy(master.strided(), p.strided(), p.shape);
    }
  }
  optimizer.zeroGrad();
  gpu.synchronize();
  const s2 = performance.now();
  return { loss, fwdBwd: s1 - s0, issue: issued - s0, optim: s2 - s1, norm };
}

const stepsDone: ReturnType<typeof trainStep>[] = [];
let error: string | null = null;
gpu.resetPeakMemory();
try {
  for (let i = 0; i < steps; i++) {
    const s = trainStep();
    stepsDone.push(s);
    // Each step as it ends, so a run cut short by a time limit still says how far it got.
    console.log(
      `step ${i + 1}: loss ${s.loss.toFixed(4)}, grad norm ${s.norm.toFixed(3)}, forward+backward ` +
        `${s.fwdBwd.toFixed(1)} ms (host enqueued it in ${s.issue.toFixed(1)} ms), clip+AdamW ${s.optim.toFixed(1)} ms`,
    );
    // Under ANDROMEDA_CUDA_PROFILE the kernel totals then cover the measured steps only.
    if (i === 1) resetProfile(gpu);
  }
} catch (e) {
  error = (e as Error).message;
}
const stats = gpu.memoryStats();
const measured = stepsDone.slice(2); // the first two steps warm the allocator and cuBLASLt's plans
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const stepMs = median(measured.map((s) => s.fwdBwd + s.optim));
const tokensPerStep = batch * seqLen;
// Model FLOPs as the anchors count them: 6·N per token plus causal attention (QKᵀ and PV, fwd + bwd).
const flops = 6 * paramCount * tokensPerStep + 6 * c.depth * c.heads * c.headDim * seqLen * seqLen * batch;
console.log(`# ${gpu.description ?? device}; ${gpu.gemmLibrary?.() ?? ''}`);
console.log(
  `# ${preset}: ${paramCount.toLocaleString('en')} parameters, ` +
    `batch ${batch} × ${seqLen}, setup ${setupSeconds.toFixed(1)} s, optimizer path: ${
      fused
        ? `${optimizerKind === 'adamw8bit' ? 'AdamW8bit (8-bit moments)' : 'AdamW (float32 moments)'} ` +
          (hostClip
            ? '(gradNorm with one wait, one many-tensor launch writing the bf16 weights)'
            : '(clipAndStep: the norm read after the many-tensor launch that clips from it, writing the bf16 weights)')
        : 'per tensor (sumOfSquares, adamw + cast copy)'
    }, attention ${attention}${
      attention === 'auto' ? ` (${typeof gpu.attentionForward === 'function' ? 'fused kernels' : 'reference'})` : ''
    }` +
    `, ${chunkedLoss ? `chunked cross-entropy (${DEFAULT_CROSS_ENTROPY_CHUNK_ROWS} rows a block)` : 'full logits'}, ${
      dataKind === 'corpus' ? 'bundled-corpus bytes' : 'random tokens'
    }${checkpointBlocks ? ', activation checkpointing' : ''}${
      segmentIds ? `, packed documents of ~${documentTokens} tokens` : ''
    }`,
);
if (error) console.log(`stopped: ${error}`);
console.log(
  `| ${preset} | ${batch} × ${seqLen} | ${measured.length ? stepMs.toFixed(1) : '–'} ms | ` +
    `${measured.length ? Math.round(tokensPerStep / (stepMs / 1000)).toLocaleString('en') : '–'} tok/s | ` +
    `${measured.length ? (flops / (stepMs / 1000) / 1e12).toFixed(1) : '–'} TFLOP/s | peak ` +
    `${(stats.peakAllocated / GiB).toFixed(1)} GiB allocated, ${(stats.reserved / GiB).toFixed(1)} GiB reserved |`,
);
