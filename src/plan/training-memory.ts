/**
 * The peak memory of one training step on one GPU (or the CPU), as the engine's allocator will count it.
 *
 * Between steps the engine holds the weights, the float32 masters (mixed precision only: with float32 compute
 * the weights are the masters) and the optimizer's state (AdamW: m and v in float32; adamw8bit: codes packed
 * four to an int32 word plus a float32 absmax per 256 elements, src/optim/adamw8bit.ts). A step adds the
 * forward pass's tensors (./activations.ts), all kept until its backward pass ends, and the backward pass adds
 * the parameters' gradients (compute dtype) one by one while freeing intermediate gradients as it goes. The
 * peak is the largest of three moments of the backward pass:
 *
 *   head      the logits' gradient [rows, vocab] and the output projection's weight gradient
 *   block 0   every gradient but the embedding's, plus the widest working set of a block's backward
 *             (with activation checkpointing: plus that block's recomputed forward tensors)
 *   end       every gradient, plus the gradient of the embedding's output
 *
 * ZeRO-style division over N GPUs (stage 1: optimizer state and masters; 2: also gradients; 3: also the
 * compute weights) divides those lines by N; the engine itself trains on one device, so sharding is a
 * projection of the layout DeepSpeed and FSDP use, not a mode the trainer runs.
 */
import type { AndromedaConfig } from '../model/config.js';
import { parameterShapes } from '../model/parameter-shapes.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import { QUANT_BLOCK } from '../optim/adamw8bit-map.js';
import { DEFAULT_CROSS_ENTROPY_CHUNK_ROWS, lossIsChunked } from '../ops/chunked-cross-entropy.js';
import type { EngineKind, TensorGroup } from './allocator.js';
import { blockGradientTensors, blockTensors, headTensors } from './activations.js';
import { CUBLASLT_WORKSPACE_BYTES, line, parameterGroups, rowGroups, type MemoryLine } from './breakdown.js';
import type { TrainingWorkload } from './workload.js';

export interface TrainingMemory {
  /** Held between steps: weights, masters, optimizer state, workspaces. */
  steady: MemoryLine[];
  /** Added during a step at its peak moment. */
  step: MemoryLine[];
  /** Which moment of the backward pass is the peak. */
  peakMoment: 'head' | 'block 0 feed-forward' | 'block 0 attention' | 'block 0 input' | 'end';
  /** steady + step: the allocator's peak. */
  peakBytes: number;
}

const sum = (lines: readonly MemoryLine[]): number => lines.reduce((s, l) => s + l.bytes, 0);

function optimizerGroups(
  shapes: ReadonlyMap<string, readonly number[]>,
  optimizer: TrainingWorkload['optimizer'],
  shards: number,
): TensorGroup[] {
  if (optimizer === 'adamw') return [...parameterGroups(shapes, 4, shards), ...parameterGroups(shapes, 4, shards)];
  // m and v: codes (four per int32 word) and one float32 absmax per block of each parameter.
  const counts = [...shapes.values()].map((shape) => shape.reduce((a, b) => a * b, 1));
  const codes = counts.map((n) => Math.ceil(n / 4) * 4);
  const absmax = counts.map((n) => Math.ceil(n / QUANT_BLOCK) * 4);
  if (shards > 1) {
    const total = (xs: number[]) => Math.ceil(xs.reduce((a, b) => a + b, 0) / shards);
    return [
      { count: 2, bytes: total(codes) },
      { count: 2, bytes: total(absmax) },
    ];
  }
  return counts.flatMap((_, i) => [
    { count: 2, bytes: codes[i]! },
    { count: 2, bytes: absmax[i]! },
  ]);
}

/** The flags that shrink each kind of line, in the words of the command a plan is shown by. */
export interface TrainingFlags {
  weights: string;
  masters: string;
  optimizer: string;
  gradients: string;
  /** Batch and sequence. */
  shape: string;
  /** Added to `shape` for the activations when checkpointing is off. */
  checkpointing: string;
}

/** `andromeda plan`'s flags. */
export const PLAN_FLAGS: TrainingFlags = {
  weights: '--model, --zero 3',
  masters: '--zero 1',
  optimizer: '--optimizer adamw8bit, --zero 1',
  gradients: '--zero 2',
  shape: '--batch, --seq (--grad-accum keeps the tokens per step)',
  checkpointing: '--checkpointing',
};

export function planTrainingPeak(
  c: AndromedaConfig,
  w: TrainingWorkload,
  engine: EngineKind,
  flags: TrainingFlags = PLAN_FLAGS,
): TrainingMemory {
  const shapes = parameterShapes(c);
  const computeBytes = DTYPE_BYTES[w.precision];
  const mixed = w.precision !== 'float32';
  const shardOptimizer = w.zeroStage >= 1 ? w.gpus : 1;
  const shardGradients = w.zeroStage >= 2 ? w.gpus : 1;
  const shardWeights = w.zeroStage >= 3 ? w.gpus : 1;
  const steady: MemoryLine[] = [
    line(
      engine,
      mixed ? `weights (${w.precision} compute copy)` : 'weights (float32, updated in place)',
      parameterGroups(shapes, computeBytes, shardWeights),
      flags.weights,
    ),
  ];
  if (shardWeights > 1)
    // ZeRO-3 gathers each block's full weights while the block runs (forward and backward).
    steady.push(
      line(
        engine,
        'one block gathered whole (ZeRO-3)',
        parameterGroups(new Map([...shapes].filter(([name]) => name.startsWith('blocks.0.'))), computeBytes),
        flags.weights,
      ),
    );
  if (mixed)
    steady.push(line(engine, 'master weights (float32)', parameterGroups(shapes, 4, shardOptimizer), flags.masters));
  steady.push(
    line(
      engine,
      w.optimizer === 'adamw' ? 'AdamW moments (float32 m, v)' : 'AdamW 8-bit moments (codes + absmax per 256)',
      optimizerGroups(shapes, w.optimizer, shardOptimizer),
      flags.optimizer,
    ),
  );
  if (engine === 'cuda')
    steady.push(line(engine, 'cuBLASLt workspace', [{ count: 1, bytes: CUBLASLT_WORKSPACE_BYTES }], ''));

  const rows = w.batch * w.seqLen;
  const dtype = w.precision;
  // Above one block of rows the trainer's loss is chunked (src/train/next-token-loss.ts, 'auto';
  // src/ops/chunked-cross-entropy.ts): one block's logits at a time, recomputed in the backward pass.
  const chunked = lossIsChunked(rows);
  const blockRows = Math.min(rows, DEFAULT_CROSS_ENTROPY_CHUNK_ROWS);
  const block = blockTensors(c);
  const head = headTensors(c);
  const shapeFlags = flags.shape;
  const forward: TensorGroup[] = [
    ...rowGroups(head.input, rows, dtype),
    ...(w.activationCheckpointing
      ? Array.from({ length: c.depth }, () => rowGroups([{ perRow: c.dim, what: 'block output' }], rows, dtype)).flat()
      : Array.from({ length: c.depth }, () => rowGroups(block, rows, dtype)).flat()),
    ...rowGroups(head.output.slice(0, -1), rows, dtype),
    // Unchunked, the logits of every row are kept for the backward pass; chunked, only their log-sum-exp.
    ...(chunked ? [] : rowGroups(head.output.slice(-1), rows, dtype)),
    // The trainer's batch (src/train/next-token-loss.ts): inputs, targets, segment ids and positions, int32 per
    // token, and the forward's own device copies of the last two (src/model/context.ts); the cross-entropy's
    // float32 log-sum-exp per row, and the loss.
    { count: 7, bytes: rows * 4 },
    { count: 1, bytes: 4 },
  ];
  const activations = line(
    engine,
    `activations kept for the backward pass ` +
      `(${w.activationCheckpointing ? 'checkpointed: block inputs' : 'every block'})`,
    forward,
    `${shapeFlags}${w.activationCheckpointing ? '' : `, ${flags.checkpointing}`}`,
  );

  const gradients = (keep: (name: string) => boolean) =>
    parameterGroups(new Map([...shapes].filter(([name]) => keep(name))), computeBytes, shardGradients);
  const outputNames = new Set(c.tiedEmbeddings ? ['embedding.weight'] : ['logits.weight', 'logits.bias']);
  // Block 0's backward runs feed-forward first (output projection, then input), then attention (output
  // projection, then q, k, v); the embedding's gradient comes last.
  const firstBlock = 'blocks.0.';
  // Tied embeddings: the logits' product gives the embedding its gradient at the start of the backward pass.
  const embeddingGradientLate = (name: string) => name === 'embedding.weight' && !c.tiedEmbeddings;
  const beforeFeedForwardInput = (name: string) =>
    !embeddingGradientLate(name) &&
    (!name.startsWith(firstBlock) ||
      name === `${firstBlock}feedForward.output.weight` ||
      name === `${firstBlock}feedForward.output.bias`);
  const beforeQueryKeyValue = (name: string) =>
    !embeddingGradientLate(name) &&
    !/^blocks\.0\.attention\.(query|key|value|queryNorm|keyNorm|queryScale|keyScale)/.test(name);
  const recompute = rowGroups(w.activationCheckpointing ? block : [], rows, dtype);
  const recomputeNote = w.activationCheckpointing ? ', recomputed' : '';
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const moments: Array<{ moment: TrainingMemory['peakMoment']; lines: MemoryLine[] }> = [
    {
      moment: 'head',
      lines: [
        line(
          engine,
          'gradients (output projection)',
          gradients((n) => outputNames.has(n)),
          flags.gradients,
        ),
        line(
          engine,
          chunked
            ? `backward working set (chunked loss: one block of ${blockRows} rows' logits gradient)`
            : 'backward working set (logits gradient)',
          [
            ...rowGroups([{ perRow: c.vocabSize, what: 'logits gradient' }], chunked ? blockRows : rows, dtype),
            ...rowGroups([{ perRow: c.dim, what: 'hidden-state gradient' }], rows, dtype),
            // The chunked backward's float32 upstream gradient per row, and its bias gradient per block.
            ...(chunked
              ? [
                  { count: 1, bytes: rows * 4 },
                  ...(c.tiedEmbeddings ? [] : [{ count: 1, bytes: c.vocabSize * computeBytes }]),
                ]
              : []),
          ],
          shapeFlags,
        ),
      ],
    },
    {
      moment: 'block 0 feed-forward',
      lines: [
        line(
          engine,
          `gradients (${w.precision}, all but block 0's first layers and the embedding)`,
          gradients(beforeFeedForwardInput),
          flags.gradients,
        ),
        line(
          engine,
          `backward working set (block 0's feed-forward${recomputeNote})`,
          [...recompute, ...rowGroups(blockGradientTensors(c), rows, dtype)],
          shapeFlags,
        ),
      ],
    },
    {
      moment: 'block 0 attention',
      lines: [
        line(
          engine,
          `gradients (${w.precision}, all but block 0's q, k, v and the embedding)`,
          gradients(beforeQueryKeyValue),
          flags.gradients,
        ),
        line(
          engine,
          `backward working set (block 0's attention${recomputeNote})`,
          [
            ...recompute,
            ...rowGroups(
              [
                { perRow: c.dim, what: 'residual gradient' },
                { perRow: q, what: 'gradient of the attention output' },
                { perRow: q, what: 'dQ' },
                { perRow: kv, what: 'dK' },
                { perRow: kv, what: 'dV' },
                // The CUDA backward accumulates dQ in float32 (native/cuda/attention/backward_hopper.h) and reads q
                // and k with rotary and xPos applied ahead, from bf16 copies (attention.cu, pretransform: q', and
                // k' or its two split halves).
                ...(engine === 'cuda'
                  ? [
                      { perRow: q, float32: true, what: 'dQ accumulator' },
                      { perRow: q, what: "q'" },
                      { perRow: kv, what: "k'" },
                      { perRow: kv, what: "k' (second half)" },
                    ]
                  : []),
              ],
              rows,
              dtype,
            ),
          ],
          shapeFlags,
        ),
      ],
    },
    {
      moment: 'block 0 input',
      lines: [
        line(
          engine,
          `gradients (${w.precision}, all but the embedding)`,
          gradients((name) => !embeddingGradientLate(name)),
          flags.gradients,
        ),
        line(
          engine,
          `backward working set (block 0's input gradient${recomputeNote ? ', block 0 recomputed' : ''})`,
          [
            ...recompute,
            // Block 0's input gradient arrives in parts (the residual path, the attention's inputs through the
            // token shift; a parallel block's feed-forward too) that are summed: three or four [rows, dim]
            // gradients at once, and with checkpointing the checkpoint's own copy of the sum.
            ...rowGroups(
              [
                { perRow: c.dim, what: 'input gradient (residual path)' },
                { perRow: c.dim, what: 'input gradient (attention path)' },
                ...(c.parallelBlocks ? [{ perRow: c.dim, what: 'input gradient (feed-forward path)' }] : []),
                { perRow: c.dim, what: 'their sum' },
                ...(w.activationCheckpointing ? [{ perRow: c.dim, what: "the checkpoint's input gradient" }] : []),
              ],
              rows,
              dtype,
            ),
          ],
          shapeFlags,
        ),
      ],
    },
    {
      moment: 'end',
      lines: [
        line(
          engine,
          `gradients (${w.precision})`,
          gradients(() => true),
          flags.gradients,
        ),
        line(
          engine,
          `backward working set (the embedding's output gradient${recomputeNote ? ', block 0 recomputed' : ''})`,
          [...recompute, ...rowGroups([{ perRow: c.dim, what: 'embedding-output gradient' }], rows, dtype)],
          shapeFlags,
        ),
      ],
    },
  ];
  const peak = moments.reduce((a, b) => (sum(b.lines) > sum(a.lines) ? b : a));
  const stepLines = [activations, ...peak.lines];
  return {
    steady,
    step: stepLines,
    peakMoment: peak.moment,
    peakBytes: sum(steady) + sum(stepLines),
  };
}
